from __future__ import annotations

import pytest

from gateway.calls.trunks import GateTurn, TrunkGate
from gateway.config import TrunkConfig
from gateway.errors import RateLimited
from media.ports import PortPool, PortsExhausted


def _gate(**kw: object) -> TrunkGate:
    return TrunkGate(TrunkConfig(id="t", uri="sip:127.0.0.1", **kw))  # type: ignore[arg-type]


def _queue(gate: TrunkGate, *call_ids: str, now: float = 0.0) -> None:
    for call_id in call_ids:
        gate.reserve()
        gate.enqueue(call_id, now)


def test_calls_are_spaced_by_the_rate_and_dialled_in_order() -> None:
    gate = _gate(calls_per_second=2, max_concurrent=10)
    _queue(gate, "c0", "c1", "c2", "c3", now=100.0)
    turn = gate.due(100.0)
    assert turn.ready == ["c0"] and turn.wake == 100.5
    assert gate.due(100.2) == GateTurn([], [], 100.5)
    assert gate.due(100.5) == GateTurn(["c1"], [], 101.0)
    assert gate.due(102.0) == GateTurn(["c2"], [], 102.5)  # idle time does not build up a burst
    assert gate.due(102.5) == GateTurn(["c3"], [], None)


def test_concurrency_limit_holds_calls_until_release() -> None:
    gate = _gate(calls_per_second=1000, max_concurrent=2, queue_timeout_seconds=60)
    _queue(gate, "c0", "c1", "c2")
    assert gate.due(0.0).ready == ["c0"]
    assert gate.due(1.0).ready == ["c1"]
    assert gate.due(2.0) == GateTurn([], [], 60.0)  # a slot must free up first (or the wait ends)
    gate.release()
    assert gate.due(3.0).ready == ["c2"]


def test_full_queue_is_429_with_retry_after() -> None:
    gate = _gate(calls_per_second=1, max_concurrent=1, queue_size=2)
    _queue(gate, "a", "b", "c")  # one for the free slot, two in the queue
    with pytest.raises(RateLimited) as exc:
        gate.reserve()
    assert exc.value.status == 429 and int(exc.value.headers["Retry-After"]) >= 1


def test_reservations_count_before_the_call_is_queued() -> None:
    """Concurrent requests reserve before any of them is stored: the limit holds for all of them."""
    gate = _gate(calls_per_second=1000, max_concurrent=20, queue_size=100)
    admitted = 0
    for _ in range(500):
        try:
            gate.reserve()
        except RateLimited:
            continue
        admitted += 1
    assert admitted == 120  # max_concurrent + queue_size
    gate.cancel_reservation()
    gate.reserve()  # a place given back can be taken again
    with pytest.raises(RateLimited):
        gate.reserve()


def test_admission_counts_dialled_calls_too() -> None:
    gate = _gate(calls_per_second=1000, max_concurrent=2, queue_size=1)
    _queue(gate, "a", "b")
    assert gate.due(0.0).ready == ["a"]
    assert gate.due(0.01).ready == ["b"]
    _queue(gate, "c")  # the queue's one place
    with pytest.raises(RateLimited):
        gate.reserve()
    gate.release()
    assert gate.due(0.1).ready == ["c"]
    gate.reserve()  # the slot "c" left behind
    with pytest.raises(RateLimited):
        gate.reserve()


def test_queued_calls_give_up_after_the_queue_timeout() -> None:
    gate = _gate(calls_per_second=1000, max_concurrent=1, queue_timeout_seconds=5)
    _queue(gate, "a", "b", now=0.0)
    _queue(gate, "c", now=2.0)
    assert gate.due(0.0) == GateTurn(["a"], [], 5.0)
    assert gate.due(4.9) == GateTurn([], [], 5.0)
    assert gate.due(5.0) == GateTurn([], ["b"], 7.0)
    assert gate.due(7.5) == GateTurn([], ["c"], None)
    assert gate.pending == 0


def test_removed_call_is_not_dialled() -> None:
    gate = _gate()
    _queue(gate, "a", "b")
    assert gate.remove("a") and not gate.remove("zz")
    assert gate.due(0.0).ready == ["b"]


def test_port_pool_hands_out_even_ports_round_robin() -> None:
    pool = PortPool(20001, 20008)
    ports = [pool.allocate() for _ in range(3)]
    assert ports == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted):
        pool.allocate()
    pool.release(20004)
    assert pool.allocate() == 20004
    assert pool.in_use == 3 and pool.available == 0
