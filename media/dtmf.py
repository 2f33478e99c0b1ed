"""RFC 4733 telephone-events (DTMF over RTP): payload codec, receiver, sender. Sans-I/O.

Events 0-9 are digits, 10 = ``*``, 11 = ``#``, 12-15 = ``A``-``D``.

Payload
-------
``TelephoneEvent(event, end=False, volume=10, duration=0, reserved=False)``
    ``TelephoneEvent.parse(payload) -> TelephoneEvent`` (raises only
    :class:`~media.errors.DtmfParseError`; octets after the first 4 are ignored),
    ``serialize() -> bytes``, ``digit -> str | None``.
``digit_for_event(event) -> str | None``, ``event_for_digit(ch) -> int`` (ValueError).

Receiver
--------
``DtmfReceiver(clock_rate=8000, timeout=0.3)``
    ``feed(timestamp, marker, payload, seq=None, now=None) -> list[DtmfDigit]``
    ``on_timer(now) -> list[DtmfDigit]``
    Each event (identified by its RTP timestamp) is reported exactly once: on its
    first end (E) packet, or, if all end packets are lost, when the next event
    starts or ``timeout`` seconds pass without a packet (``ended=False`` then).
    End-packet retransmissions, duplicates and stragglers of reported events are
    ignored. Malformed payloads are counted in ``malformed`` and ignored. Events
    longer than 0xFFFF samples (sent as segments with new timestamps, RFC 4733
    2.5.1.3) are joined into one digit.
``DtmfDigit(digit, event, duration_samples, duration_ms, timestamp, volume, ended)``

Sender
------
``DtmfSender(digits, *, clock_rate=8000, tone_ms=100, gap_ms=100, packet_ms=20,
volume=10, end_packets=3)``
    ``next_payload() -> (payload, marker, timestamp_offset) | None`` is called once per
    ``packet_ms`` tick. ``timestamp_offset`` (samples since the first tick) is the
    event's start, constant for all packets of one digit; add it to the RTP
    timestamp that the first tick would have had. The first packet of each digit
    carries the marker; the duration grows by one tick per packet; the last
    ``end_packets`` packets have E set with the final duration. ``None`` means
    nothing to send on this tick (inter-digit gap) or the sender is ``done``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from media.errors import DtmfParseError

__all__ = [
    "EVENT_CHARS",
    "DtmfDigit",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_for_event",
    "event_for_digit",
]

EVENT_CHARS = "0123456789*#ABCD"

Buffer = bytes | bytearray | memoryview


def digit_for_event(event: int) -> str | None:
    """Character for DTMF event codes 0..15, None for other telephone events."""
    return EVENT_CHARS[event] if 0 <= event < len(EVENT_CHARS) else None


def event_for_digit(ch: str) -> int:
    """Event code for ``0-9 * # A-D`` (case-insensitive); ValueError otherwise."""
    idx = EVENT_CHARS.find(ch.upper()) if len(ch) == 1 else -1
    if idx < 0:
        raise ValueError(f"not a DTMF digit: {ch!r}")
    return idx


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0
    reserved: bool = False

    @classmethod
    def parse(cls, payload: Buffer) -> TelephoneEvent:
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise DtmfParseError(f"expected a bytes-like object, got {type(payload).__name__}")
        if len(payload) < 4:
            raise DtmfParseError(f"telephone-event payload too short: {len(payload)} bytes")
        b1 = payload[1]
        return cls(
            event=payload[0],
            end=bool(b1 & 0x80),
            reserved=bool(b1 & 0x40),
            volume=b1 & 0x3F,
            duration=(payload[2] << 8) | payload[3],
        )

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise ValueError(f"event {self.event} out of range 0..255")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"volume {self.volume} out of range 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise ValueError(f"duration {self.duration} out of range 0..65535")
        b1 = self.volume | (0x80 if self.end else 0) | (0x40 if self.reserved else 0)
        return bytes((self.event, b1, self.duration >> 8, self.duration & 0xFF))

    @property
    def digit(self) -> str | None:
        return digit_for_event(self.event)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One received event. ``digit`` is None for non-DTMF telephone events."""

    digit: str | None
    event: int
    duration_samples: int
    duration_ms: float
    timestamp: int
    volume: int
    ended: bool


def _ts_diff(a: int, b: int) -> int:
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class _Current:
    __slots__ = ("base", "duration", "event", "last_seen", "timestamp", "volume")

    def __init__(self, timestamp: int, event: int, volume: int, now: float) -> None:
        self.timestamp = timestamp  # timestamp of the first segment (event start)
        self.base = 0  # samples contributed by earlier segments of a long event
        self.event = event
        self.volume = volume
        self.duration = 0
        self.last_seen = now


class DtmfReceiver:
    """Turns telephone-event RTP packets into digits, each reported exactly once."""

    _RECENT = 32

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.3) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self.clock_rate = clock_rate
        self.timeout = timeout
        self._cur: _Current | None = None
        self._seg_ts: int | None = None  # timestamp of the segment being received
        self._recent: deque[int] = deque(maxlen=self._RECENT)  # segment timestamps done
        self._newest_ts: int | None = None
        self._stale_window = 2 * clock_rate
        self._clock = 0.0
        self.malformed = 0
        self.duplicates = 0
        self.stale = 0

    def reset(self) -> None:
        """Forget all state (new SSRC / re-INVITE); a pending event is dropped."""
        self._cur = None
        self._seg_ts = None
        self._recent.clear()
        self._newest_ts = None

    def _finish(self, ended: bool) -> DtmfDigit:
        cur = self._cur
        assert cur is not None
        self._cur = None
        if self._seg_ts is not None:
            self._recent.append(self._seg_ts)
        self._seg_ts = None
        total = cur.base + cur.duration
        return DtmfDigit(
            digit=digit_for_event(cur.event),
            event=cur.event,
            duration_samples=total,
            duration_ms=total * 1000.0 / self.clock_rate,
            timestamp=cur.timestamp,
            volume=cur.volume,
            ended=ended,
        )

    def feed(
        self,
        timestamp: int,
        marker: bool,
        payload: Buffer,
        seq: int | None = None,
        now: float | None = None,
    ) -> list[DtmfDigit]:
        """Process one telephone-event packet; returns digits completed by it.

        ``seq`` is accepted for symmetry with the RTP header; events are identified
        by timestamp, which is what RFC 4733 keys them on (retransmitted end
        packets may even repeat the sequence number). ``now`` (arrival time) drives
        the timeout; without it the last time seen by ``feed``/``on_timer`` is used.
        """
        del seq
        if now is None:
            now = self._clock
        else:
            self._clock = now
        try:
            ev = TelephoneEvent.parse(payload)
        except DtmfParseError:
            self.malformed += 1
            return []
        timestamp &= 0xFFFFFFFF
        out: list[DtmfDigit] = []
        cur = self._cur

        if cur is not None and timestamp == self._seg_ts:
            if ev.event != cur.event:
                # Same timestamp, different event: a broken sender; treat as new event.
                out.append(self._finish(ended=False))
                self._recent.pop()
                return out + self._start(timestamp, ev, now)
            else:
                cur.last_seen = now
                cur.duration = max(cur.duration, ev.duration)
                if ev.end:
                    out.append(self._finish(ended=True))
                return out

        if timestamp in self._recent:
            self.duplicates += 1
            return out
        if self._newest_ts is not None and -self._stale_window < _ts_diff(timestamp, self._newest_ts) < 0:
            # Slightly older than an event already handled: a straggler, never a new
            # digit. Much older timestamps mean the sender restarted its clock.
            self.stale += 1
            return out

        if cur is not None:
            seg_ts = self._seg_ts if self._seg_ts is not None else cur.timestamp
            gap = _ts_diff(timestamp, seg_ts)
            if not marker and ev.event == cur.event and 0xC000 <= cur.duration <= gap <= 0xFFFF:
                # Next segment of a long event (RFC 4733 2.5.1.3).
                self._recent.append(seg_ts)
                cur.base += gap
                cur.duration = ev.duration
                cur.last_seen = now
                self._seg_ts = timestamp
                self._newest_ts = timestamp
                if ev.end:
                    out.append(self._finish(ended=True))
                return out
            out.append(self._finish(ended=False))

        return out + self._start(timestamp, ev, now)

    def _start(self, timestamp: int, ev: TelephoneEvent, now: float) -> list[DtmfDigit]:
        self._newest_ts = timestamp
        self._cur = _Current(timestamp, ev.event, ev.volume, now)
        self._cur.duration = ev.duration
        self._seg_ts = timestamp
        return [self._finish(ended=True)] if ev.end else []

    def on_timer(self, now: float) -> list[DtmfDigit]:
        """Report an event whose end packets never arrived once ``timeout`` passed."""
        self._clock = now
        cur = self._cur
        if cur is not None and now - cur.last_seen >= self.timeout:
            return [self._finish(ended=False)]
        return []

    @property
    def in_progress(self) -> bool:
        return self._cur is not None


class DtmfSender:
    """Packet schedule for a digit string, one call to ``next_payload`` per tick."""

    def __init__(
        self,
        digits: str,
        *,
        clock_rate: int = 8000,
        tone_ms: int = 100,
        gap_ms: int = 100,
        packet_ms: int = 20,
        volume: int = 10,
        end_packets: int = 3,
    ) -> None:
        if packet_ms <= 0 or tone_ms <= 0 or gap_ms < 0 or end_packets < 1:
            raise ValueError("invalid DTMF timing")
        if not 0 <= volume <= 63:
            raise ValueError("volume must be 0..63")
        self._events = [event_for_digit(ch) for ch in digits]
        self._samples_per_tick = clock_rate * packet_ms // 1000
        tone_ticks = max(1, -(-tone_ms // packet_ms))
        if tone_ticks * self._samples_per_tick > 0xFFFF:
            raise ValueError("tone too long for one event segment")
        self._tone_ticks = tone_ticks
        self._gap_ticks = -(-gap_ms // packet_ms)
        self._end_packets = end_packets
        self._volume = volume
        # Ticks per digit: tone packets (the last carries the first E), then the
        # E retransmissions, then the silent gap.
        self._digit_ticks = tone_ticks + end_packets - 1 + self._gap_ticks
        self._tick = 0

    @property
    def total_ticks(self) -> int:
        """Ticks needed for the whole string (the trailing gap included)."""
        return len(self._events) * self._digit_ticks

    @property
    def done(self) -> bool:
        return self._tick >= self.total_ticks

    def next_payload(self) -> tuple[bytes, bool, int] | None:
        if self.done:
            return None
        index, pos = divmod(self._tick, self._digit_ticks)
        self._tick += 1
        event_ticks = self._tone_ticks + self._end_packets - 1
        if pos >= event_ticks:
            return None
        end = pos >= self._tone_ticks - 1
        duration = min(pos + 1, self._tone_ticks) * self._samples_per_tick
        payload = TelephoneEvent(self._events[index], end, self._volume, duration).serialize()
        offset = index * self._digit_ticks * self._samples_per_tick
        return payload, pos == 0, offset
