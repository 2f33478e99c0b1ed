"""RTCP (RFC 3550 section 6) packets, reception statistics and NTP helpers. Sans-I/O.

Packets (dataclasses, each with ``serialize() -> bytes``)
----------------------------------------------------------
``ReportBlock(ssrc, fraction_lost, cumulative_lost, extended_highest_seq, jitter, lsr, dlsr)``
    ``fraction_lost`` 0..255 (fixed point /256), ``cumulative_lost`` signed 24-bit,
    ``jitter`` in timestamp units, ``lsr`` middle 32 bits of the last SR's NTP time,
    ``dlsr`` delay since that SR in 1/65536 s.
``SenderReport(ssrc, ntp_timestamp, rtp_timestamp, packet_count, octet_count, reports=[],
extension=b"")``
``ReceiverReport(ssrc, reports=[], extension=b"")``
``SdesChunk(ssrc, items=[(type, bytes)])`` with ``.cname``; ``SourceDescription(chunks)``
``Bye(ssrcs, reason=None)``
``UnknownRtcpPacket(packet_type, count, body)`` (APP, feedback, XR: kept opaque)
``RtcpPacket`` is the union of these.

``parse_rtcp(data, *, strict=False) -> list[RtcpPacket]`` parses a compound packet and
raises only :class:`~media.errors.RtcpParseError`; ``strict`` also enforces RFC 3550
A.2 (first packet SR/RR, padding only in the last one).
``serialize_rtcp(packets) -> bytes`` concatenates packets into a compound packet.

Reception statistics (RFC 3550 A.1, A.3, A.8)
---------------------------------------------
``ReceptionStats(clock_rate, *, min_sequential=2, max_dropout=3000, max_misorder=100)``
    ``update(seq, timestamp, arrival, ssrc) -> bool``: True when the packet counts
    (source validated); a new SSRC resets all state and re-enters probation.
    ``on_sender_report(ntp_timestamp, now)`` remembers LSR for the next report.
    ``report_block(now) -> ReportBlock | None`` computes the interval fraction lost
    (mutates the interval baseline) and DLSR.
    Properties: ``ssrc``, ``valid``, ``received``, ``expected``, ``lost``,
    ``extended_highest_seq``, ``fraction_lost`` (0..1, last report interval),
    ``jitter`` (timestamp units), ``jitter_ms``, ``ssrc_changes``, ``restarts``.

NTP helpers
-----------
``ntp_from_unix(t) -> int`` (64-bit), ``unix_from_ntp(ntp) -> float``,
``ntp_middle32(ntp) -> int``, ``round_trip_time(block, arrival_unix) -> float | None``
(seconds, from a received report block's LSR/DLSR; None when LSR is 0 or the result
would be negative).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from media.errors import RtcpParseError

__all__ = [
    "NTP_UNIX_OFFSET",
    "PT_APP",
    "PT_BYE",
    "PT_RR",
    "PT_SDES",
    "PT_SR",
    "SDES_CNAME",
    "Bye",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcpPacket",
    "ntp_from_unix",
    "ntp_middle32",
    "parse_rtcp",
    "round_trip_time",
    "serialize_rtcp",
    "unix_from_ntp",
]

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204

SDES_END = 0
SDES_CNAME = 1

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_HDR = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_SR_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")

Buffer = bytes | bytearray | memoryview


# --------------------------------------------------------------------------- NTP


def ntp_from_unix(t: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point, era-wrapped) for a Unix time."""
    secs = math.floor(t)
    frac = int((t - secs) * 4294967296.0)
    if frac > 0xFFFFFFFF:
        frac = 0xFFFFFFFF
    return (((secs + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | frac


def unix_from_ntp(ntp: int) -> float:
    """Inverse of :func:`ntp_from_unix`; seconds with MSB 0 are read as era 1 (RFC 4330)."""
    secs = (ntp >> 32) & 0xFFFFFFFF
    if secs < 0x80000000:
        secs += 1 << 32
    return secs - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


def ntp_middle32(ntp: int) -> int:
    """Middle 32 bits of a 64-bit NTP timestamp (the LSR / compact 16.16 format)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(block: ReportBlock, arrival_unix: float) -> float | None:
    """RTT in seconds = A - LSR - DLSR (RFC 3550 section 6.4.1).

    ``arrival_unix`` is the wall-clock time the report arrived. Returns None if the
    peer has not received an SR from us yet (LSR 0) or the result is negative.
    """
    if block.lsr == 0:
        return None
    a = ntp_middle32(ntp_from_unix(arrival_unix))
    rtt = (a - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return None
    return rtt / 65536.0


# --------------------------------------------------------------------------- packets


def _check(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} out of range {lo}..{hi}")


def _header(padding: bool, count: int, pt: int, body_len: int) -> bytes:
    if body_len % 4:
        raise ValueError("RTCP packet body must be a multiple of 4 octets")
    _check("count", count, 0, 31)
    return _HDR.pack(0x80 | (0x20 if padding else 0) | count, pt, body_len // 4)


@dataclass(slots=True, frozen=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    extended_highest_seq: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def serialize(self) -> bytes:
        _check("fraction_lost", self.fraction_lost, 0, 255)
        _check("cumulative_lost", self.cumulative_lost, -0x800000, 0x7FFFFF)
        for name in ("ssrc", "extended_highest_seq", "jitter", "lsr", "dlsr"):
            _check(name, getattr(self, name), 0, 0xFFFFFFFF)
        lost = self.cumulative_lost & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | lost,
            self.extended_highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def parse(cls, data: Buffer, offset: int = 0) -> ReportBlock:
        if len(data) - offset < _BLOCK.size:
            raise RtcpParseError("report block truncated")
        ssrc, fl, ehs, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, fl >> 24, lost, ehs, jitter, lsr, dlsr)


def _serialize_blocks(reports: list[ReportBlock]) -> bytes:
    if len(reports) > 31:
        raise ValueError("at most 31 report blocks per packet")
    return b"".join(r.serialize() for r in reports)


def _check_ext(extension: bytes) -> None:
    if len(extension) % 4:
        raise ValueError("profile-specific extension must be a multiple of 4 octets")


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    def serialize(self) -> bytes:
        _check("ntp_timestamp", self.ntp_timestamp, 0, (1 << 64) - 1)
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check(name, getattr(self, name), 0, 0xFFFFFFFF)
        _check_ext(self.extension)
        body = (
            _SR_INFO.pack(
                self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
            )
            + _serialize_blocks(self.reports)
            + self.extension
        )
        return _header(False, len(self.reports), PT_SR, len(body)) + body


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    def serialize(self) -> bytes:
        _check("ssrc", self.ssrc, 0, 0xFFFFFFFF)
        _check_ext(self.extension)
        body = _U32.pack(self.ssrc) + _serialize_blocks(self.reports) + self.extension
        return _header(False, len(self.reports), PT_RR, len(body)) + body


@dataclass(slots=True)
class SdesChunk:
    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None

    def serialize(self) -> bytes:
        _check("ssrc", self.ssrc, 0, 0xFFFFFFFF)
        out = bytearray(_U32.pack(self.ssrc))
        for kind, value in self.items:
            _check("SDES item type", kind, 1, 255)
            _check("SDES item length", len(value), 0, 255)
            out += bytes((kind, len(value))) + value
        # Item list ends with at least one null octet, then pad to 32 bits.
        out += bytes(4 - len(out) % 4)
        return bytes(out)


@dataclass(slots=True)
class SourceDescription:
    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls([SdesChunk(ssrc, [(SDES_CNAME, cname.encode())])])

    def serialize(self) -> bytes:
        body = b"".join(c.serialize() for c in self.chunks)
        return _header(False, len(self.chunks), PT_SDES, len(body)) + body


@dataclass(slots=True)
class Bye:
    ssrcs: list[int] = field(default_factory=list)
    reason: str | None = None

    def serialize(self) -> bytes:
        body = bytearray()
        for s in self.ssrcs:
            _check("ssrc", s, 0, 0xFFFFFFFF)
            body += _U32.pack(s)
        if self.reason is not None:
            text = self.reason.encode()
            _check("BYE reason length", len(text), 0, 255)
            body += bytes((len(text),)) + text
            body += bytes(-len(body) % 4)
        return _header(False, len(self.ssrcs), PT_BYE, len(body)) + bytes(body)


@dataclass(slots=True)
class UnknownRtcpPacket:
    """Any other packet type (APP, RTPFB, PSFB, XR...): header fields plus raw body."""

    packet_type: int
    count: int
    body: bytes = b""

    def serialize(self) -> bytes:
        _check("packet_type", self.packet_type, 0, 255)
        return _header(False, self.count, self.packet_type, len(self.body)) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcpPacket


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Build a compound RTCP packet (the caller orders it: SR/RR first, then SDES...)."""
    return b"".join(p.serialize() for p in packets)


def _parse_blocks(body: Buffer, offset: int, count: int) -> list[ReportBlock]:
    return [ReportBlock.parse(body, offset + i * _BLOCK.size) for i in range(count)]


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks: list[SdesChunk] = []
    pos = 0
    n = len(body)
    for _ in range(count):
        if pos + 4 > n:
            raise RtcpParseError("SDES chunk truncated")
        (ssrc,) = _U32.unpack_from(body, pos)
        pos += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if pos >= n:
                raise RtcpParseError("SDES item list not terminated")
            kind = body[pos]
            if kind == SDES_END:
                pos = (pos + 4) & ~3  # skip the null octet(s) to the next 32-bit boundary
                break
            if pos + 2 > n:
                raise RtcpParseError("SDES item truncated")
            length = body[pos + 1]
            end = pos + 2 + length
            if end > n:
                raise RtcpParseError("SDES item text truncated")
            items.append((kind, body[pos + 2 : end]))
            pos = end
        chunks.append(SdesChunk(ssrc, items))
    return SourceDescription(chunks)


def _parse_bye(body: bytes, count: int) -> Bye:
    if count * 4 > len(body):
        raise RtcpParseError("BYE SSRC list truncated")
    ssrcs = list(struct.unpack_from(f"!{count}I", body, 0))
    reason = None
    pos = count * 4
    if pos < len(body):
        length = body[pos]
        if pos + 1 + length > len(body):
            raise RtcpParseError("BYE reason truncated")
        reason = body[pos + 1 : pos + 1 + length].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


def parse_rtcp(data: Buffer, *, strict: bool = False) -> list[RtcpPacket]:
    """Parse a (compound) RTCP packet; raises only :class:`RtcpParseError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RtcpParseError(f"expected a bytes-like object, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n < 4:
        raise RtcpParseError(f"RTCP packet too short: {n} bytes")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if n - pos < 4:
            raise RtcpParseError("trailing bytes after last RTCP packet")
        b0, pt, words = _HDR.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise RtcpParseError(f"unsupported RTCP version {b0 >> 6}")
        count = b0 & 0x1F
        end = pos + 4 + words * 4
        if end > n:
            raise RtcpParseError(f"RTCP length field ({words} words) exceeds packet")
        if strict and not packets and pt not in (PT_SR, PT_RR):
            raise RtcpParseError(f"compound RTCP must start with SR or RR, not {pt}")
        body_end = end
        if b0 & 0x20:
            if strict and end != n:
                raise RtcpParseError("padding only allowed in the last RTCP packet")
            if end == pos + 4:
                raise RtcpParseError("RTCP padding bit set on empty packet")
            pad = data[end - 1]
            if pad == 0 or pad > words * 4:
                raise RtcpParseError(f"invalid RTCP padding length {pad}")
            body_end = end - pad
        body = data[pos + 4 : body_end]
        packets.append(_parse_one(pt, count, body))
        pos = end
    return packets


def _parse_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    if pt == PT_SR:
        need = _SR_INFO.size + count * _BLOCK.size
        if len(body) < need:
            raise RtcpParseError("SR truncated")
        ssrc, ntp, rtp_ts, pc, oc = _SR_INFO.unpack_from(body, 0)
        blocks = _parse_blocks(body, _SR_INFO.size, count)
        return SenderReport(ssrc, ntp, rtp_ts, pc, oc, blocks, body[need:])
    if pt == PT_RR:
        need = 4 + count * _BLOCK.size
        if len(body) < need:
            raise RtcpParseError("RR truncated")
        (ssrc,) = _U32.unpack_from(body, 0)
        return ReceiverReport(ssrc, _parse_blocks(body, 4, count), body[need:])
    if pt == PT_SDES:
        return _parse_sdes(body, count)
    if pt == PT_BYE:
        return _parse_bye(body, count)
    return UnknownRtcpPacket(pt, count, body)


# --------------------------------------------------------------------------- reception


class ReceptionStats:
    """Per-source receive statistics following RFC 3550 appendix A.1/A.3/A.8.

    ``arrival`` / ``now`` are monotonic seconds; ``timestamp`` is the RTP timestamp.
    """

    def __init__(
        self,
        clock_rate: int,
        *,
        min_sequential: int = 2,
        max_dropout: int = 3000,
        max_misorder: int = 100,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self.clock_rate = clock_rate
        self.min_sequential = max(1, min_sequential)
        self.max_dropout = max_dropout
        self.max_misorder = max_misorder
        self._ssrc: int | None = None
        self.ssrc_changes = 0
        self.restarts = 0
        self._reset_source()

    def _reset_source(self) -> None:
        self._probation = self.min_sequential
        self._max_seq = 0
        self._base_seq = 0
        self._bad_seq = 1 << 17  # impossible value: no pending restart candidate
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._fraction = 0.0
        self._jitter = 0.0
        self._last_arrival: float | None = None
        self._last_ts = 0
        self._lsr = 0
        self._lsr_time = 0.0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = 1 << 17
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._last_arrival = None

    # -- A.1 -------------------------------------------------------------------------

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._received += 1
                    return True
            else:
                self._probation = self.min_sequential - 1
                self._max_seq = seq
            return False
        if udelta < self.max_dropout:
            if seq < self._max_seq:
                self._cycles += 1 << 16
            self._max_seq = seq
        elif udelta <= (1 << 16) - self.max_misorder:
            if seq == self._bad_seq:
                # Two sequential packets after a big jump: the sender restarted.
                self._init_seq(seq)
                self.restarts += 1
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted but max_seq unchanged
        self._received += 1
        return True

    def update(self, seq: int, timestamp: int, arrival: float, ssrc: int) -> bool:
        """Account one received RTP packet. Returns True if it was counted."""
        if ssrc == self._ssrc and not self._probation and seq == (self._max_seq + 1) & 0xFFFF:
            # The next packet in order, as nearly all are: A.1 and A.8 without the cases.
            if seq == 0:
                self._cycles += 1 << 16
            self._max_seq = seq
            self._received += 1
            last = self._last_arrival
            if last is not None:
                ts_delta = ((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                d = (arrival - last) * self.clock_rate - ts_delta
                self._jitter += ((d if d >= 0.0 else -d) - self._jitter) / 16.0
            self._last_arrival = arrival
            self._last_ts = timestamp
            return True
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self.ssrc_changes += 1
            self._ssrc = ssrc
            self._reset_source()
            self._max_seq = (seq - 1) & 0xFFFF
        if not self._update_seq(seq):
            return False
        self._note_arrival(timestamp, arrival)
        return True

    # -- A.8 -------------------------------------------------------------------------

    def _note_arrival(self, timestamp: int, arrival: float) -> None:
        if self._last_arrival is not None:
            ts_delta = ((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = abs((arrival - self._last_arrival) * self.clock_rate - ts_delta)
            self._jitter += (d - self._jitter) / 16.0
        self._last_arrival = arrival
        self._last_ts = timestamp

    # -- SR bookkeeping / A.3 ----------------------------------------------------------

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember the middle 32 bits of a received SR for LSR/DLSR."""
        self._lsr = ntp_middle32(ntp_timestamp)
        self._lsr_time = now

    @property
    def ssrc(self) -> int | None:
        return self._ssrc

    @property
    def valid(self) -> bool:
        """True once the source passed probation."""
        return self._ssrc is not None and self._probation == 0

    @property
    def received(self) -> int:
        return self._received

    @property
    def extended_highest_seq(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if not self.valid:
            return 0
        return self.extended_highest_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative lost (may be negative with duplicates), unclamped."""
        return self.expected - self._received

    @property
    def fraction_lost(self) -> float:
        """Fraction lost over the last report interval (0..1)."""
        return self._fraction

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate in timestamp units."""
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0 / self.clock_rate

    def report_block(self, now: float) -> ReportBlock | None:
        """Build the report block for this source and start a new loss interval."""
        if not self.valid or self._ssrc is None:
            return None
        expected = self.expected
        lost = max(-0x800000, min(0x7FFFFF, expected - self._received))
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self._received - self._received_prior
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        self._fraction = fraction / 256.0
        dlsr = 0
        if self._lsr:
            dlsr = max(0, min(0xFFFFFFFF, int((now - self._lsr_time) * 65536.0)))
        return ReportBlock(
            ssrc=self._ssrc,
            fraction_lost=fraction,
            cumulative_lost=lost,
            extended_highest_seq=self.extended_highest_seq & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self._jitter)),
            lsr=self._lsr,
            dlsr=dlsr,
        )
