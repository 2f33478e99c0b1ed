"""A node's queue of calls waiting for their trunk, and slots counted in memory (one node)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.calls.trunks import TrunkQueue
from gateway.config import TrunkConfig
from gateway.store.slots import GRANTED, Grant, LocalSlots
from media.ports import PortPool, PortsExhausted


def _trunk(**kw: object) -> TrunkConfig:
    return TrunkConfig(id="t", uri="sip:127.0.0.1", **kw)  # type: ignore[arg-type]


def test_slots_are_spaced_by_the_rate() -> None:
    trunk = _trunk(calls_per_second=2, max_concurrent=10)
    slots = LocalSlots()
    assert slots.try_acquire(trunk, 100.0) == GRANTED
    assert slots.try_acquire(trunk, 100.2) == Grant(False, 100.5)
    assert slots.try_acquire(trunk, 100.5) == GRANTED
    assert slots.try_acquire(trunk, 102.0) == GRANTED  # idle time does not build up a burst
    assert slots.try_acquire(trunk, 102.1) == Grant(False, 102.5)


def test_concurrency_holds_until_a_slot_is_released() -> None:
    trunk = _trunk(calls_per_second=1000, max_concurrent=2)
    slots = LocalSlots()
    assert slots.try_acquire(trunk, 0.0).ok and slots.try_acquire(trunk, 1.0).ok
    assert slots.try_acquire(trunk, 2.0) == Grant(False)  # wait for a release, not a time
    slots.release(trunk, "a")
    assert asyncio.run(slots.acquire(trunk, "c", 3.0)) == GRANTED
    assert slots.active("t") == 2


def test_the_queue_keeps_order_and_gives_up_after_the_timeout() -> None:
    queue = TrunkQueue(_trunk(queue_timeout_seconds=5))
    queue.add("a", 0.0)
    queue.add("b", 0.0)
    queue.add("c", 2.0)
    assert queue.head() == "a" and len(queue) == 3
    assert queue.pop() == "a"
    assert queue.expired(4.9) == [] and queue.next_give_up() == 5.0
    assert queue.expired(5.0) == ["b"]
    assert queue.expired(7.5) == ["c"]
    assert queue.head() is None and queue.next_give_up() is None


def test_a_removed_call_leaves_the_queue() -> None:
    queue = TrunkQueue(_trunk())
    queue.add("a", 0.0)
    queue.add("b", 0.0)
    assert queue.remove("a") and not queue.remove("zz")
    assert queue.head() == "b"


def test_port_pool_hands_out_even_ports_round_robin() -> None:
    pool = PortPool(20001, 20008)
    ports = [pool.allocate() for _ in range(3)]
    assert ports == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted):
        pool.allocate()
    pool.release(20004)
    assert pool.allocate() == 20004
    assert pool.in_use == 3 and pool.available == 0
