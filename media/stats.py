"""Per-call media counters. Sans-I/O.

``MediaStats`` is a mutable dataclass owned by one call's media endpoint:

    packets_in, bytes_in, packets_out, bytes_out     RTP traffic (bytes = UDP payload)
    rtcp_in, rtcp_out                                RTCP packets
    packets_lost, fraction_lost, jitter_ms           from :class:`media.rtcp.ReceptionStats`
    late, dropped, duplicates, concealed,            from :class:`media.jitterbuffer.JitterBuffer`
    underruns, resyncs, target_delay_ms
    malformed                                        packets that failed to parse
    dropped_foreign_source                           packets from unexpected addresses
    dtmf_in, dtmf_out                                DTMF digits received / sent
    rtt_ms                                           last RTCP round-trip time, or None

``on_packet_in(nbytes)``, ``on_packet_out(nbytes)`` count traffic;
``update_from_reception(stats)`` and ``update_from_jitter_buffer(stats)`` copy the
gauges/counters of those components (they keep their own running totals);
``as_dict() -> dict[str, int | float | None]`` gives a flat, JSON-ready snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media.jitterbuffer import JitterBufferStats
    from media.rtcp import ReceptionStats

__all__ = ["MediaStats"]


@dataclass(slots=True)
class MediaStats:
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    packets_lost: int = 0
    fraction_lost: float = 0.0
    jitter_ms: float = 0.0
    late: int = 0
    dropped: int = 0
    duplicates: int = 0
    concealed: int = 0
    underruns: int = 0
    resyncs: int = 0
    target_delay_ms: float = 0.0
    malformed: int = 0
    dropped_foreign_source: int = 0
    dtmf_in: int = 0
    dtmf_out: int = 0
    rtt_ms: float | None = None

    def on_packet_in(self, nbytes: int) -> None:
        self.packets_in += 1
        self.bytes_in += nbytes

    def on_packet_out(self, nbytes: int) -> None:
        self.packets_out += 1
        self.bytes_out += nbytes

    def update_from_reception(self, rs: ReceptionStats) -> None:
        self.packets_lost = max(0, rs.lost)
        self.fraction_lost = rs.fraction_lost
        self.jitter_ms = rs.jitter_ms

    def update_from_jitter_buffer(self, jb: JitterBufferStats) -> None:
        self.late = jb.late
        self.dropped = jb.dropped
        self.duplicates = jb.duplicates
        self.concealed = jb.concealed
        self.underruns = jb.underruns
        self.resyncs = jb.resyncs
        self.target_delay_ms = jb.target_delay_ms

    def as_dict(self) -> dict[str, int | float | None]:
        return asdict(self)
