"""50 calls on one clock: one call's packets, watched on a raw socket, stay paced.

Runs on the stock asyncio loop and on uvloop. Timings are printed, and only loose
sanity is asserted (these machines are shared).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest
import uvloop

from media.clock import MediaClock
from media.session import MediaConfig, MediaSession
from tests.component.test_media_helpers import LOOPBACK, RawPeer, ToneSource, negotiated, open_session
from tests.support.clock import wait_until

CALLS = 50
RUN_S = 2.0
WARMUP_S = 0.2


class LoopSource:
    """Cheap PlayoutSource cycling over precomputed frames."""

    def __init__(self, freq: float) -> None:
        tone = ToneSource(freq)
        self._frames = itertools.cycle([tone.next_frame() or b"" for _ in range(50)])

    def next_frame(self) -> bytes | None:
        return next(self._frames)


class CountingSink:
    frames = 0

    def on_caller_audio(self, pcm: bytes) -> None:
        self.frames += 1


async def _run() -> dict[str, Any]:
    config = MediaConfig(local_address=LOOPBACK)
    clock = MediaClock()
    clock.start()
    sessions: list[MediaSession] = [await open_session(config, call_id=f"c{i}") for i in range(CALLS)]
    watch, hole = await RawPeer.open(), await RawPeer.open()
    sinks = []
    for i, s in enumerate(sessions):
        s.set_source(LoopSource(300.0 + 10 * i))
        sink = CountingSink()
        sinks.append(sink)
        s.add_sink(sink)
    for a, b in zip(sessions[0:48:2], sessions[1:48:2], strict=True):
        a.set_remote(negotiated(b.rtp_port))
        b.set_remote(negotiated(a.rtp_port))
    watched = sessions[48]
    watched.set_remote(negotiated(watch.port))
    sessions[49].set_remote(negotiated(hole.port))
    for s in sessions:
        clock.add(s)

    cpu0, wall0 = time.process_time(), time.monotonic()
    skipped0 = clock.stats.skipped_ticks
    # Two seconds' worth of the watched call's packets, however long the loaded machine takes.
    await wait_until(lambda: len(watch.received) >= RUN_S * 50, timeout=3 * RUN_S)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    result = {
        "packets": [(seq, ts, m, arr) for _pt, seq, ts, _ssrc, m, _p, arr in watch.rtp()],
        "start": wall0,
        "cpu_share": cpu / wall,
        "clock": clock.stats.as_dict(),
        "skipped": clock.stats.skipped_ticks - skipped0,
        "peer_in": sessions[1].stats()["packets_in"],
        "sink_frames": min(s.frames for s in sinks),
        "ticks": clock.stats.ticks,
    }
    await clock.stop()
    for s in sessions:
        await s.close()
    watch.close()
    hole.close()
    return result


RUNNERS: dict[str, Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.mark.parametrize("loop_kind", sorted(RUNNERS))
def test_fifty_calls_on_one_clock_stay_paced(loop_kind: str) -> None:
    r = RUNNERS[loop_kind](_run())
    pkts = [p for p in r["packets"] if p[3] >= r["start"] + WARMUP_S]
    assert len(pkts) > 50

    seqs = [p[0] for p in pkts]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)), "sequence gap"
    for prev, cur in itertools.pairwise(pkts):
        step = (cur[1] - prev[1]) & 0xFFFFFFFF
        if cur[2]:  # marker: ticks were skipped, the timestamp kept wall time
            assert step % 160 == 0 and step >= 160
        else:
            assert step == 160
    span_frames = ((pkts[-1][1] - pkts[0][1]) & 0xFFFFFFFF) // 160
    elapsed = pkts[-1][3] - pkts[0][3]
    # The media timeline follows wall time, and every tick not skipped sent a packet.
    assert abs(span_frames - elapsed / 0.02) <= 3
    assert len(pkts) - 1 == span_frames - sum(
        ((b[1] - a[1]) & 0xFFFFFFFF) // 160 - 1 for a, b in itertools.pairwise(pkts)
    )
    assert abs(len(pkts) - (elapsed / 0.02 + 1)) <= 2 + r["skipped"]

    gaps_ms = np.diff([p[3] for p in pkts]) * 1000.0
    p50, p99, worst = np.percentile(gaps_ms, 50), np.percentile(gaps_ms, 99), gaps_ms.max()
    clock = r["clock"]
    print(
        f"\n[{loop_kind}] {CALLS} calls, {len(pkts)} packets watched over {elapsed:.2f} s: "
        f"inter-arrival p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms; "
        f"clock lateness p50 {clock['p50_lateness_ms']} ms p99 {clock['p99_lateness_ms']} ms "
        f"max {clock['max_lateness_ms']} ms, skipped {clock['skipped_ticks']}; "
        f"tick work p50 {clock['p50_work_ms']} ms p99 {clock['p99_work_ms']} ms "
        f"({1000 * clock['p50_work_ms'] / CALLS:.1f} us per call per tick); "
        f"process CPU {100 * r['cpu_share']:.1f} % of a core ({100 * r['cpu_share'] / CALLS:.2f} % per call)"
    )
    assert worst < 200.0
    assert r["peer_in"] > 0.8 * RUN_S * 50  # paired calls hear each other too
    assert r["sink_frames"] >= r["ticks"] - 5  # every call delivered a frame per tick
