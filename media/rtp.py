"""RTP (RFC 3550) packet model, hot-path helpers and sender state. Sans-I/O.

Packet model
------------
``RtpExtension(profile: int, data: bytes)``
    Header extension; ``data`` length must be a multiple of 4.
``RtpPacket(payload_type, sequence_number, timestamp, ssrc, payload=b"", marker=False,
csrcs=(), extension=None, padding=0, version=2)``
    ``padding`` is the number of padding octets on the wire (0 = P bit clear; when
    non-zero it includes the trailing count octet, 1..255).
    ``RtpPacket.parse(data) -> RtpPacket`` raises :class:`~media.errors.RtpParseError`
    (and nothing else) for any malformed input; ``serialize() -> bytes`` raises
    ``ValueError`` for out-of-range fields.

Hot path
--------
``build_packet(payload_type, seq, timestamp, ssrc, payload, marker=False) -> bytes``
    12-byte header + payload, two allocations.
``pack_header_into(buf, offset, payload_type, seq, timestamp, ssrc, marker=False) -> None``
    Writes the 12-byte header into a preallocated writable buffer (no allocation).
``parse_header_fast(data) -> (pt, seq, ts, ssrc, marker, payload_offset)``
    Validates version/length, skips CSRCs and the extension. Padding is NOT
    stripped: if ``data[0] & 0x20`` use ``payload_end(data, payload_offset)``.
``payload_end(data, payload_offset) -> int``
    End index of the payload, honouring the P bit.
``is_rtcp(data) -> bool``
    RFC 5761 demultiplexing test (second octet in 192..223).

Sequence / timestamp arithmetic
-------------------------------
``seq_add(seq, n)``, ``seq_diff(a, b)`` (signed, -32768..32767), ``seq_lt(a, b)``,
``extend_seq(seq, reference)`` (value congruent to ``seq`` mod 2**16 closest to the
extended ``reference``), ``ts_add(ts, n)``, ``ts_diff(a, b)`` (signed 32-bit),
``extend_ts(ts, reference)`` and ``SequenceExtender().extend(seq) -> int``.

Sender
------
``RtpSender(payload_type, ssrc=None, sequence_number=None, timestamp=None)``
    Random initial values when omitted (RFC 3550 section 5.1).
    ``next_packet(payload, samples, marker=False) -> bytes`` stamps the current
    seq/timestamp, then advances seq by 1 and the timestamp by ``samples``.
    The first packet and the first packet after ``mark_gap()`` carry the marker.
    ``advance(samples)`` moves the timestamp without sending (paused media).
    ``next_packet_at(payload, payload_type, timestamp, marker=False) -> bytes`` sends
    with an explicit payload type and timestamp (RFC 4733 events) sharing the
    sequence space, without moving the media timestamp.
    Read-only: ``ssrc``, ``payload_type``, ``sequence_number`` (next),
    ``timestamp`` (next), ``packets_sent``, ``octets_sent`` (payload octets, for SR).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field

from media.errors import RtpParseError

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpExtension",
    "RtpPacket",
    "RtpSender",
    "SequenceExtender",
    "build_packet",
    "extend_seq",
    "extend_ts",
    "is_rtcp",
    "pack_header_into",
    "parse_header_fast",
    "payload_end",
    "seq_add",
    "seq_diff",
    "seq_lt",
    "ts_add",
    "ts_diff",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_unpack_header = _HEADER.unpack_from
_pack_header = _HEADER.pack
_pack_header_into = _HEADER.pack_into

Buffer = bytes | bytearray | memoryview


# --------------------------------------------------------------------------- arithmetic


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2**16."""
    return (seq + n) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in 16-bit sequence space (-32768..32767)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_lt(a: int, b: int) -> bool:
    """True if ``a`` precedes ``b`` in 16-bit sequence space."""
    return seq_diff(a, b) < 0


def extend_seq(seq: int, reference: int) -> int:
    """Extend a 16-bit ``seq`` to the value closest to the extended ``reference``."""
    return reference + seq_diff(seq, reference & 0xFFFF)


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2**32."""
    return (ts + n) & 0xFFFFFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in 32-bit timestamp space."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def extend_ts(ts: int, reference: int) -> int:
    """Extend a 32-bit ``ts`` to the value closest to the extended ``reference``."""
    return reference + ts_diff(ts, reference & 0xFFFFFFFF)


class SequenceExtender:
    """Tracks 16-bit sequence numbers as a monotonic-ish extended counter.

    Reordered packets map below the highest value seen; wraps add 2**16.
    """

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """Highest extended sequence number seen so far."""
        return self._highest

    def extend(self, seq: int) -> int:
        if self._highest is None:
            self._highest = seq & 0xFFFF
            return self._highest
        ext = extend_seq(seq, self._highest)
        if ext > self._highest:
            self._highest = ext
        return ext

    def reset(self) -> None:
        self._highest = None


# --------------------------------------------------------------------------- fast path


def is_rtcp(data: Buffer) -> bool:
    """RFC 5761: RTCP packet types 192..223 sit where RTP has marker+PT."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def build_packet(
    payload_type: int, seq: int, timestamp: int, ssrc: int, payload: Buffer, marker: bool = False
) -> bytes:
    """Serialize a plain RTP packet (no CSRC/extension/padding).

    Values are masked to their field widths rather than validated (hot path).
    """
    b1 = (payload_type & 0x7F) | 0x80 if marker else payload_type & 0x7F
    return _pack_header(0x80, b1, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + payload


def pack_header_into(
    buf: bytearray | memoryview,
    offset: int,
    payload_type: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
) -> None:
    """Write a 12-byte RTP header into ``buf[offset:offset + 12]`` without allocating."""
    b1 = (payload_type & 0x7F) | 0x80 if marker else payload_type & 0x7F
    _pack_header_into(buf, offset, 0x80, b1, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)


def parse_header_fast(data: Buffer) -> tuple[int, int, int, int, bool, int]:
    """Return ``(pt, seq, ts, ssrc, marker, payload_offset)``.

    Raises :class:`RtpParseError` on anything malformed. Padding is not stripped.
    """
    n = len(data)
    if n < RTP_HEADER_SIZE:
        raise RtpParseError(f"RTP packet too short: {n} bytes")
    b0, b1, seq, ts, ssrc = _unpack_header(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpParseError(f"unsupported RTP version {b0 >> 6}")
    offset = RTP_HEADER_SIZE + (b0 & 0x0F) * 4
    if b0 & 0x10:
        if n < offset + 4:
            raise RtpParseError("RTP header extension truncated")
        offset += 4 + ((data[offset + 2] << 8) | data[offset + 3]) * 4
    if offset > n:
        raise RtpParseError("RTP header longer than packet")
    return b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), offset


def payload_end(data: Buffer, payload_offset: int) -> int:
    """Index one past the payload: ``len(data)`` minus padding when the P bit is set."""
    n = len(data)
    if n == 0:
        raise RtpParseError("empty RTP packet")
    if not data[0] & 0x20:
        return n
    if n <= payload_offset:
        raise RtpParseError("RTP padding bit set but no padding present")
    pad = data[n - 1]
    if pad == 0 or n - pad < payload_offset:
        raise RtpParseError(f"invalid RTP padding length {pad}")
    return n - pad


# --------------------------------------------------------------------------- model


@dataclass(slots=True, frozen=True)
class RtpExtension:
    """RFC 3550 header extension: 16-bit profile-defined id and 32-bit-aligned data."""

    profile: int
    data: bytes = b""


@dataclass(slots=True)
class RtpPacket:
    """A full RTP packet. See the module docstring for field semantics."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0
    version: int = field(default=RTP_VERSION)

    @classmethod
    def parse(cls, data: Buffer) -> RtpPacket:
        """Parse one RTP packet; raises only :class:`RtpParseError` on bad input."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise RtpParseError(f"expected a bytes-like object, got {type(data).__name__}")
        n = len(data)
        if n < RTP_HEADER_SIZE:
            raise RtpParseError(f"RTP packet too short: {n} bytes")
        b0, b1, seq, ts, ssrc = _unpack_header(data)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise RtpParseError(f"unsupported RTP version {version}")
        cc = b0 & 0x0F
        offset = RTP_HEADER_SIZE + cc * 4
        if offset > n:
            raise RtpParseError(f"RTP packet truncated in CSRC list ({cc} CSRCs, {n} bytes)")
        csrcs = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        extension = None
        if b0 & 0x10:
            if offset + 4 > n:
                raise RtpParseError("RTP header extension truncated")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            offset += 4
            end = offset + words * 4
            if end > n:
                raise RtpParseError(f"RTP header extension length {words} words exceeds packet")
            extension = RtpExtension(profile, bytes(data[offset:end]))
            offset = end
        end = n
        padding = 0
        if b0 & 0x20:
            if offset >= n:
                raise RtpParseError("RTP padding bit set but no padding present")
            padding = data[n - 1]
            if padding == 0 or n - padding < offset:
                raise RtpParseError(f"invalid RTP padding length {padding}")
            end = n - padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(b1 & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
            version=version,
        )

    def serialize(self) -> bytes:
        """Encode to wire format; raises ``ValueError`` for out-of-range fields."""
        if self.version != RTP_VERSION:
            raise ValueError(f"only RTP version 2 can be serialized, not {self.version}")
        _check_range("payload_type", self.payload_type, 0x7F)
        _check_range("sequence_number", self.sequence_number, 0xFFFF)
        _check_range("timestamp", self.timestamp, 0xFFFFFFFF)
        _check_range("ssrc", self.ssrc, 0xFFFFFFFF)
        _check_range("padding", self.padding, 0xFF)
        if len(self.csrcs) > 15:
            raise ValueError(f"at most 15 CSRCs allowed, got {len(self.csrcs)}")
        for c in self.csrcs:
            _check_range("csrc", c, 0xFFFFFFFF)
        b0 = 0x80 | len(self.csrcs)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = self.payload_type | (0x80 if self.marker else 0)
        parts = [_pack_header(b0, b1, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            _check_range("extension profile", ext.profile, 0xFFFF)
            if len(ext.data) % 4:
                raise ValueError("extension data length must be a multiple of 4")
            words = len(ext.data) // 4
            _check_range("extension length", words, 0xFFFF)
            parts.append(_EXT_HEADER.pack(ext.profile, words))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def _check_range(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} {value} out of range 0..{maximum}")


# --------------------------------------------------------------------------- sender


def _random_bits(bits: int) -> int:
    return secrets.randbits(bits)


class RtpSender:
    """Outgoing RTP stream state: SSRC, next sequence number, next timestamp."""

    __slots__ = (
        "_pending_marker",
        "_pt",
        "_seq",
        "_ssrc",
        "_ts",
        "octets_sent",
        "packets_sent",
    )

    def __init__(
        self,
        payload_type: int,
        ssrc: int | None = None,
        sequence_number: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        _check_range("payload_type", payload_type, 0x7F)
        self._pt = payload_type
        self._ssrc = _random_bits(32) if ssrc is None else ssrc & 0xFFFFFFFF
        self._seq = _random_bits(16) if sequence_number is None else sequence_number & 0xFFFF
        self._ts = _random_bits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        self._pending_marker = True
        self.packets_sent = 0
        self.octets_sent = 0

    @property
    def ssrc(self) -> int:
        return self._ssrc

    @property
    def payload_type(self) -> int:
        return self._pt

    @property
    def sequence_number(self) -> int:
        """Sequence number the next packet will carry."""
        return self._seq

    @property
    def timestamp(self) -> int:
        """Media timestamp the next ``next_packet`` will carry."""
        return self._ts

    def mark_gap(self) -> None:
        """Set the marker on the next media packet (start of a talkspurt after a gap)."""
        self._pending_marker = True

    def advance(self, samples: int) -> None:
        """Let media time pass without sending (e.g. while paused or sending events)."""
        self._ts = (self._ts + samples) & 0xFFFFFFFF

    def next_packet(self, payload: Buffer, samples: int, marker: bool = False) -> bytes:
        """Serialize the next media packet, then advance seq by 1 and timestamp by ``samples``."""
        if self._pending_marker:
            marker = True
            self._pending_marker = False
        pkt = build_packet(self._pt, self._seq, self._ts, self._ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + samples) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return pkt

    def next_packet_at(
        self, payload: Buffer, payload_type: int, timestamp: int, marker: bool = False
    ) -> bytes:
        """Serialize a packet with explicit PT/timestamp in this stream's sequence space."""
        pkt = build_packet(payload_type, self._seq, timestamp, self._ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return pkt
