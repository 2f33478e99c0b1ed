from __future__ import annotations

import pytest

from gateway.calls.trunks import TrunkGate
from gateway.config import TrunkConfig
from gateway.errors import RateLimited
from media.ports import PortPool, PortsExhausted


def _gate(**kw: object) -> TrunkGate:
    return TrunkGate(TrunkConfig(id="t", uri="sip:127.0.0.1", **kw))  # type: ignore[arg-type]


def test_calls_are_spaced_by_the_rate_and_dialled_in_order() -> None:
    gate = _gate(calls_per_second=2, max_concurrent=10)
    for i in range(4):
        gate.enqueue(f"c{i}")
    ready, again = gate.due(100.0)
    assert ready == ["c0"] and again == 100.5
    assert gate.due(100.2) == ([], 100.5)
    assert gate.due(100.5) == (["c1"], 101.0)
    assert gate.due(102.0) == (["c2"], 102.5)  # idle time does not build up a burst
    assert gate.due(102.5) == (["c3"], None)


def test_concurrency_limit_holds_calls_until_release() -> None:
    gate = _gate(calls_per_second=1000, max_concurrent=2)
    for i in range(3):
        gate.enqueue(f"c{i}")
    assert gate.due(0.0)[0] == ["c0"]
    assert gate.due(1.0)[0] == ["c1"]
    assert gate.due(2.0) == ([], None)  # a slot must free up first
    gate.release()
    assert gate.due(3.0)[0] == ["c2"]


def test_full_queue_is_429_with_retry_after() -> None:
    gate = _gate(calls_per_second=1, max_concurrent=1, queue_size=2)
    gate.enqueue("a")
    gate.enqueue("b")
    with pytest.raises(RateLimited) as exc:
        gate.check_admission()
    assert exc.value.status == 429 and int(exc.value.headers["Retry-After"]) >= 1


def test_removed_call_is_not_dialled() -> None:
    gate = _gate()
    gate.enqueue("a")
    gate.enqueue("b")
    assert gate.remove("a") and not gate.remove("zz")
    assert gate.due(0.0)[0] == ["b"]


def test_port_pool_hands_out_even_ports_round_robin() -> None:
    pool = PortPool(20001, 20008)
    ports = [pool.allocate() for _ in range(3)]
    assert ports == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted):
        pool.allocate()
    pool.release(20004)
    assert pool.allocate() == 20004
    assert pool.in_use == 3 and pool.available == 0
