from __future__ import annotations

import json

from media.jitterbuffer import JitterBuffer
from media.rtcp import ReceptionStats
from media.stats import MediaStats


def test_counters_and_snapshot() -> None:
    s = MediaStats()
    s.on_packet_in(172)
    s.on_packet_in(172)
    s.on_packet_out(172)
    s.dropped_foreign_source += 3
    d = s.as_dict()
    assert d["packets_in"] == 2 and d["bytes_in"] == 344
    assert d["packets_out"] == 1 and d["bytes_out"] == 172
    assert d["dropped_foreign_source"] == 3
    assert d["rtt_ms"] is None
    json.dumps(d)  # JSON-ready


def test_update_from_components() -> None:
    rs = ReceptionStats(8000)
    jb = JitterBuffer()
    for i in range(50):
        if i == 20:
            continue
        arrival = i * 0.02 + (0.01 if i % 2 else 0.0)
        rs.update(i, i * 160, arrival, 7)
        jb.put(i, i * 160, 7, b"\xff" * 160, i == 0, arrival)
        if i % 10 == 0:
            jb.put(i, i * 160, 7, b"\xff" * 160, i == 0, arrival)
    rs.report_block(1.0)
    s = MediaStats()
    s.update_from_reception(rs)
    s.update_from_jitter_buffer(jb.stats)
    assert s.packets_lost == 1
    assert s.fraction_lost > 0
    assert s.jitter_ms > 1.0
    assert s.duplicates == jb.stats.duplicates == 4
    assert s.target_delay_ms == jb.stats.target_delay_ms
    assert set(s.as_dict()) >= {
        "packets_in",
        "bytes_in",
        "packets_out",
        "bytes_out",
        "packets_lost",
        "jitter_ms",
        "late",
        "dropped",
        "concealed",
        "dropped_foreign_source",
    }
