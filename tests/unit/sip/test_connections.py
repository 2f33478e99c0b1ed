"""TcpConnections: which inbound SIP TCP connections are kept, and when idle ones are closed."""

from __future__ import annotations

import pytest

from gateway.sip.connections import Address, TcpConnections, TcpLimits, Throttle

TRUNK_IP = "203.0.113.10"
LIMITS = TcpLimits(max_connections=5, max_per_source=2, first_message_timeout=10.0, idle_timeout=300.0)


def table(limits: TcpLimits = LIMITS) -> TcpConnections:
    return TcpConnections(limits, lambda ip: ip == TRUNK_IP)


def nobody_calls(peer: Address) -> bool:
    return False


def test_per_source_limit() -> None:
    t = table()
    assert t.admit(1, ("192.0.2.1", 1001), 0.0) is None
    assert t.admit(2, ("192.0.2.1", 1002), 0.0) is None
    assert t.admit(3, ("192.0.2.1", 1003), 0.0) == "source_limit"
    assert t.admit(4, ("192.0.2.2", 1001), 0.0) is None  # another address has its own share
    t.closed(1)
    assert t.admit(5, ("192.0.2.1", 1004), 0.0) is None  # a slot came back
    assert (t.inbound, t.counted) == (3, 3)


def test_total_limit() -> None:
    t = table()
    for n in range(5):
        assert t.admit(n, (f"192.0.2.{n}", 5060), 0.0) is None
    assert t.admit(9, ("192.0.2.99", 5060), 0.0) == "total_limit"
    t.closed(0)
    assert t.admit(9, ("192.0.2.99", 5060), 0.0) is None


def test_trunks_are_not_limited_and_outbound_connections_are_not_counted() -> None:
    t = table()
    for n in range(5):
        assert t.admit(n, (f"192.0.2.{n}", 5060), 0.0) is None
    for n in range(10):
        assert t.admit(100 + n, (TRUNK_IP, 40000 + n), 0.0) is None
        t.opened(200 + n, ("198.51.100.1", 5060 + n), 0.0)
    assert (t.inbound, t.outbound, t.counted) == (15, 10, 5)
    assert t.admit(99, ("192.0.2.99", 5060), 0.0) == "total_limit"


def test_trunks_only() -> None:
    t = table(TcpLimits(accept="trunks"))
    assert t.admit(1, ("192.0.2.1", 5060), 0.0) == "not_trunk"
    assert t.admit(2, (TRUNK_IP, 5060), 0.0) is None
    assert (t.inbound, t.counted) == (1, 0)


def test_a_failing_trust_check_trusts_nobody() -> None:
    def broken(ip: str) -> bool:
        raise RuntimeError("reloading")

    t = TcpConnections(TcpLimits(accept="trunks"), broken)
    assert t.admit(1, (TRUNK_IP, 5060), 0.0) == "not_trunk"


def test_no_sip_message_in_time_closes_even_with_traffic() -> None:
    t = table()
    t.admit("silent", ("192.0.2.1", 1), 0.0)
    t.admit("talker", ("192.0.2.2", 1), 0.0)
    t.admit("sip", ("192.0.2.3", 1), 0.0)
    t.admit("trunk", (TRUNK_IP, 1), 0.0)
    for now in (1.0, 5.0, 9.0):
        t.traffic("talker", now)  # CRLF keep-alives, garbage: not a SIP message
    t.valid_message("sip", 9.0)
    assert t.expire(9.99, nobody_calls) == []
    assert sorted(t.expire(10.0, nobody_calls)) == [
        ("silent", "no_sip"),
        ("talker", "no_sip"),
        ("trunk", "no_sip"),
    ]


def test_idle_established_connections_close_unless_a_call_rests_on_them() -> None:
    t = table()
    t.admit("quiet", ("192.0.2.1", 1), 0.0)
    t.admit("pinged", ("192.0.2.2", 1), 0.0)
    t.admit("call", ("192.0.2.3", 1), 0.0)
    t.opened("ours", ("198.51.100.1", 5060), 0.0)
    for key in ("quiet", "pinged", "call"):
        t.valid_message(key, 1.0)
    busy = {("192.0.2.3", 1)}
    asked: list[Address] = []

    def in_use(peer: Address) -> bool:
        asked.append(peer)
        return peer in busy

    def expire(now: float, ping: bool = True) -> list[object]:
        if ping:
            t.traffic("pinged", now - 120)  # RFC 5626 CRLF keep-alives (every 120 s) count as traffic
        due = t.expire(now, in_use)
        for key, _ in due:
            t.closed(key)
        return sorted(str(key) for key, reason in due if reason == "idle")

    assert expire(299.9) == []
    assert expire(300.0) == ["ours"]  # idle since it was opened at 0
    assert expire(301.0) == ["quiet"]
    assert asked == [("198.51.100.1", 5060), ("192.0.2.1", 1), ("192.0.2.3", 1)]  # "call" kept: it is up
    assert expire(600.0) == []  # asked again only an idle period later
    assert expire(601.0) == []
    busy.clear()  # the call ended
    assert expire(900.0) == []
    assert expire(901.0) == ["call"]
    assert expire(10_000.0, ping=False) == ["pinged"]  # the pings stopped at 781
    assert (t.inbound, t.outbound, t.counted) == (0, 0, 0)


def test_closing_frees_everything_and_unknown_keys_are_ignored() -> None:
    t = table()
    t.admit(1, ("192.0.2.1", 1), 0.0)
    t.admit(2, (TRUNK_IP, 1), 0.0)
    t.opened(3, ("198.51.100.1", 5060), 0.0)
    for key in (1, 2, 3, 4, 1):
        t.closed(key)
    assert (t.inbound, t.outbound, t.counted) == (0, 0, 0)
    assert t.expire(1e9, nobody_calls) == []
    t.traffic(1, 5.0)
    t.valid_message(1, 5.0)


@pytest.mark.parametrize("kwargs", [{"max_connections": 0}, {"max_per_source": 0}, {"idle_timeout": 0}])
def test_limits_must_make_sense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TcpLimits(**kwargs)  # type: ignore[arg-type]


def test_throttle_reports_once_per_interval_with_the_count_held_back() -> None:
    throttle = Throttle(10.0)
    assert throttle.report("total_limit", 0.0) == 0
    assert [throttle.report("total_limit", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.report("source_limit", 5.0) == 0  # each kind on its own
    assert throttle.report("total_limit", 10.0) == 3
    assert throttle.report("total_limit", 10.5) is None
    assert throttle.report("total_limit", 30.0) == 1
