"""DTMF carried in SIP INFO bodies (``application/dtmf-relay`` and ``application/dtmf``).

Some carriers relay key presses as INFO requests instead of (or besides) RFC 4733 events
in the media. Two body formats are in use:

* ``application/dtmf-relay`` (Cisco): ``Signal=5\\r\\nDuration=160\\r\\n`` - keys are
  case-insensitive, white space around ``=`` is tolerated, ``Signal`` may also be the
  numeric event code of RFC 4733 (10 is ``*``, 11 is ``#``, 12-15 are ``A``-``D``).
* ``application/dtmf``: the body is the digit itself (``5``), or an event code.

Public API
----------
``DtmfInfo(digit: str, duration_ms: int | None)`` (frozen) - ``digit`` is one of
``0123456789*#ABCD``; ``duration_ms`` is None when the body does not say.

``parse_dtmf_info(content_type: str | None, body: bytes) -> DtmfInfo | None`` - None
when the content type is not a DTMF one or the body does not name a valid key.

``DTMF_CONTENT_TYPES`` - the content types understood (lower case).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DTMF_CONTENT_TYPES", "DtmfInfo", "parse_dtmf_info"]

DTMF_RELAY = "application/dtmf-relay"
DTMF_PLAIN = "application/dtmf"
DTMF_CONTENT_TYPES = frozenset({DTMF_RELAY, DTMF_PLAIN})

_DIGITS = frozenset("0123456789*#ABCD")
_EVENT_CODES = "0123456789*#ABCD"  # RFC 4733 section 3.2: event n is _EVENT_CODES[n]
_MAX_DURATION_MS = 60_000


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    digit: str
    duration_ms: int | None


def _digit(text: str) -> str | None:
    value = text.strip().upper()
    if len(value) == 1 and value in _DIGITS:
        return value
    if value.isascii() and value.isdigit() and len(value) <= 2:
        code = int(value)
        if code < len(_EVENT_CODES):
            return _EVENT_CODES[code]
    return None


def _duration(text: str) -> int | None:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        return None
    return min(int(value), _MAX_DURATION_MS)


def parse_dtmf_info(content_type: str | None, body: bytes) -> DtmfInfo | None:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if kind == DTMF_PLAIN:
        digit = _digit(text)
        return DtmfInfo(digit, None) if digit is not None else None
    if kind != DTMF_RELAY:
        return None
    signal: str | None = None
    duration: int | None = None
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if not eq:
            continue
        key = name.strip().lower()
        if key == "signal" and signal is None:
            signal = _digit(value)
            if signal is None:
                return None
        elif key == "duration" and duration is None:
            duration = _duration(value)
    if signal is None:
        return None
    return DtmfInfo(signal, duration)
