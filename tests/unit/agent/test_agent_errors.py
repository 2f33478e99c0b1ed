from __future__ import annotations

import pytest

from media.agent.errors import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    EncodeError,
    FloodGuard,
    LogLimiter,
    close_code_for,
    utf8_size_exceeds,
)
from media.agent.events import VIOLATION_KINDS, ProtocolViolation, ViolationKind


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("malformed_json", 1008),
        ("unknown_type", 1008),
        ("missing_field", 1008),
        ("bad_value", 1008),
        ("odd_sized_frame", 1008),
        ("oversized_frame", 1009),
        ("text_too_large", 1009),
        ("binary_not_allowed", 1003),
    ],
)
def test_close_codes(kind: ViolationKind, code: int) -> None:
    assert close_code_for(kind) == code


def test_close_code_constants() -> None:
    assert (CLOSE_UNSUPPORTED_DATA, CLOSE_POLICY_VIOLATION, CLOSE_MESSAGE_TOO_BIG) == (1003, 1008, 1009)
    assert len(VIOLATION_KINDS) == 8


def test_flood_guard_window() -> None:
    guard = FloodGuard(limit=3, window_ms=1000)
    v = ProtocolViolation("bad_value", "x")
    assert [guard.record(v, t) for t in (0, 100, 200)] == [None, None, None]
    assert guard.record(v, 300) == 1008
    # Old entries age out of the window.
    assert guard.record(v, 1250) is None
    assert guard.total == 5


def test_flood_guard_code_follows_last_violation() -> None:
    guard = FloodGuard(limit=0, window_ms=1000)
    assert guard.record(ProtocolViolation("text_too_large", ""), 0) == 1009
    assert guard.record(ProtocolViolation("binary_not_allowed", ""), 1) == 1003


def test_flood_guard_validates() -> None:
    with pytest.raises(ValueError):
        FloodGuard(limit=-1)
    with pytest.raises(ValueError):
        FloodGuard(window_ms=0)


def test_utf8_size() -> None:
    assert not utf8_size_exceeds("a" * 10, 10)
    assert utf8_size_exceeds("a" * 11, 10)
    assert utf8_size_exceeds("é" * 6, 10)
    assert not utf8_size_exceeds("é" * 5, 10)
    assert utf8_size_exceeds("\ud800" * 4, 10)


def test_encode_error_is_value_error() -> None:
    assert issubclass(EncodeError, ValueError)


def test_log_limiter_lets_a_burst_through_then_one_line_per_interval() -> None:
    limiter = LogLimiter(burst=2, interval=10.0)
    assert [limiter.allow(t) for t in (0.0, 0.1)] == [(True, 0), (True, 0)]
    assert limiter.allow(0.2) == (True, 0)  # past the burst: the first of the interval
    assert [limiter.allow(t) for t in (1.0, 5.0, 10.1)] == [(False, 0), (False, 0), (False, 0)]
    assert limiter.allow(10.2) == (True, 3)  # the next interval: says how many were not logged
    assert limiter.allow(10.3) == (False, 0)
