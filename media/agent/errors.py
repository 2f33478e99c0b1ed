"""Errors, violation helpers and the flood policy shared by the agent codecs.

Agent input never raises: it becomes a ProtocolViolation.  EncodeError is only
for gateway-side bugs (an event that cannot be put on the wire).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Final

from media.agent.events import DTMF_DIGITS, ProtocolViolation, ViolationKind

# RFC 6455 close codes.
CLOSE_NORMAL: Final = 1000
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_MESSAGE_TOO_BIG: Final = 1009

DEFAULT_MAX_TEXT_BYTES: Final = 64 * 1024
DEFAULT_MAX_MARK_NAME: Final = 256
DEFAULT_MAX_DTMF_DIGITS: Final = 32
DEFAULT_MAX_SUMMARY_BYTES: Final = 32 * 1024

_DETAIL_MAX: Final = 120


class AgentProtocolError(Exception):
    """Base class for errors raised by the agent codecs."""


class EncodeError(AgentProtocolError, ValueError):
    """The gateway asked to encode an event that is invalid for the wire format."""


def close_code_for(kind: ViolationKind) -> int:
    """Close code to use when a flood of violations ends with this kind."""
    if kind in ("text_too_large", "oversized_frame"):
        return CLOSE_MESSAGE_TOO_BIG
    if kind == "binary_not_allowed":
        return CLOSE_UNSUPPORTED_DATA
    return CLOSE_POLICY_VIOLATION


class FloodGuard:
    """Sliding-window violation counter; time is passed in to stay sans-I/O.

    ``record`` returns a close code once more than ``limit`` violations fell
    within ``window_ms``; below that the bridge just logs and drops them.
    """

    def __init__(self, limit: int = 20, window_ms: int = 10_000) -> None:
        if limit < 0 or window_ms <= 0:
            raise ValueError("limit must be >= 0 and window_ms > 0")
        self.limit = limit
        self.window_ms = window_ms
        self.total = 0
        self._times: deque[int] = deque()

    def record(self, violation: ProtocolViolation, now_ms: int) -> int | None:
        self.total += 1
        self._times.append(now_ms)
        horizon = now_ms - self.window_ms
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        if len(self._times) > self.limit:
            return close_code_for(violation.kind)
        return None


class LogLimiter:
    """At most ``burst`` lines, then one line per ``interval`` seconds with a suppressed count.

    Time is passed in (seconds on any monotonic clock), as for FloodGuard.
    """

    def __init__(self, burst: int = 5, interval: float = 10.0) -> None:
        self.burst = burst
        self.interval = interval
        self._count = 0
        self._next = 0.0
        self._suppressed = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """(log this one, how many were suppressed since the last line logged)."""
        self._count += 1
        if self._count <= self.burst or now >= self._next:
            suppressed, self._suppressed = self._suppressed, 0
            if self._count > self.burst:
                self._next = now + self.interval
            return True, suppressed
        self._suppressed += 1
        return False, 0


def violation(kind: ViolationKind, detail: str) -> ProtocolViolation:
    # Details end up in logs; never echo an unbounded agent payload.
    if len(detail) > _DETAIL_MAX:
        detail = detail[: _DETAIL_MAX - 3] + "..."
    return ProtocolViolation(kind, detail)


def utf8_size_exceeds(text: str, limit: int) -> bool:
    # Each code point is 1..4 UTF-8 bytes, so most frames are decided without encoding.
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(text: str, max_bytes: int) -> dict[str, Any] | ProtocolViolation:
    """Size-check and parse a text frame that must hold one JSON object."""
    if utf8_size_exceeds(text, max_bytes):
        return violation("text_too_large", f"text frame over {max_bytes} bytes")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return violation("malformed_json", "nesting too deep")
    except ValueError as exc:
        return violation("malformed_json", str(exc))
    if not isinstance(value, dict):
        return violation("malformed_json", f"expected a JSON object, got {type(value).__name__}")
    return value


def require_str(
    msg: dict[str, Any], key: str, where: str, *, max_len: int, allow_empty: bool = False
) -> str | ProtocolViolation:
    if key not in msg:
        return violation("missing_field", f"{where}: missing {key!r}")
    value = msg[key]
    if not isinstance(value, str):
        return violation("bad_value", f"{where}: {key!r} must be a string")
    if not value and not allow_empty:
        return violation("bad_value", f"{where}: {key!r} must not be empty")
    if len(value) > max_len:
        return violation("bad_value", f"{where}: {key!r} longer than {max_len}")
    return value


def check_dtmf_digits(digits: str, where: str) -> str | ProtocolViolation:
    """Normalise a-d to upper case; anything outside 0-9 * # A-D is rejected."""
    out = []
    for ch in digits:
        # Only ASCII a-d are folded: str.upper() maps some non-ASCII letters to ASCII.
        up = ch.upper() if ch in "abcd" else ch
        if up not in DTMF_DIGITS:
            return violation("bad_value", f"{where}: {ch!r} is not a DTMF digit (0-9 * # A-D)")
        out.append(up)
    return "".join(out)


def dumps(obj: Any) -> str:
    """Compact JSON for gateway -> agent text frames."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(f"value cannot be encoded as JSON: {exc}") from exc


def json_size(obj: Any) -> int | None:
    """UTF-8 size of the compact JSON form, or None if it cannot be encoded."""
    try:
        return len(json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        return None
