"""MediaClock on a real event loop: absolute deadlines, skip-not-burst, fault isolation.

Real time is what is under test here, so the clock runs on it; the tests wait until enough
ticks have happened, and compare them with the time that took.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time

import pytest

from media.clock import MediaClock
from tests.support.clock import wait_until

PERIOD = 0.02


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[tuple[float, int, float]] = []  # (now given, index, wall time)

    def tick(self, now: float, tick_index: int) -> None:
        self.ticks.append((now, tick_index, time.monotonic()))


async def test_ticks_follow_wall_time_without_drift() -> None:
    clock = MediaClock()
    rec = Recorder()
    clock.add(rec)
    clock.add(rec)  # adding twice is a no-op
    assert clock.participants == 1
    clock.start()
    await wait_until(lambda: clock.stats.ticks + clock.stats.skipped_ticks >= 50)  # a second of ticks
    await clock.stop()
    assert not clock.running

    indices = [i for _, i, _ in rec.ticks]
    assert indices == sorted(set(indices))
    first_now, first_idx, _ = rec.ticks[0]
    last_now, last_idx, _ = rec.ticks[-1]
    # Every tick runs less than a frame after its absolute deadline, so the index
    # always matches elapsed time to within one tick, however long the run.
    assert abs((last_now - first_now) / PERIOD - (last_idx - first_idx)) < 1.0
    st = clock.stats
    assert len(rec.ticks) == st.ticks
    assert last_idx - first_idx + 1 == st.ticks + st.skipped_ticks
    # As many ticks as 20 ms frames in the time they took (which the stop ended within a frame).
    assert abs((rec.ticks[-1][2] - rec.ticks[0][2]) / PERIOD - (last_idx - first_idx)) < 2.0
    assert sum(st.histogram) == st.ticks
    d = st.as_dict()
    assert d["ticks"] == st.ticks and "p99_lateness_ms" in d and "lateness_histogram" in d
    print(f"\nclock 1 s idle: {d}")


async def test_late_loop_skips_missed_ticks_instead_of_bursting() -> None:
    clock = MediaClock()
    rec = Recorder()
    stall_end: list[float] = []

    class Staller:
        def tick(self, now: float, tick_index: int) -> None:
            if tick_index == 10:
                time.sleep(0.11)  # simulates a blocked event loop (a test-only stall)
                stall_end.append(time.monotonic())

    clock.add(rec)
    clock.add(Staller())
    clock.start()
    await wait_until(lambda: bool(rec.ticks) and rec.ticks[-1][1] >= 30)  # well past the stall
    await clock.stop()

    indices = [i for _, i, _ in rec.ticks]
    jumps = [b - a for a, b in itertools.pairwise(indices)]
    assert max(jumps) >= 5  # 110 ms stall: 4-5 deadlines missed
    assert clock.stats.skipped_ticks == sum(j - 1 for j in jumps) >= 4
    assert clock.stats.late_ticks >= 1
    assert clock.stats.max_lateness_ms >= 80
    # No burst: after the stall at most the due tick runs at once, then the grid resumes.
    after = [wall for _, _, wall in rec.ticks if stall_end[0] <= wall <= stall_end[0] + 0.035]
    assert len(after) <= 3
    # Still on the original grid: the index matches the elapsed time.
    first_now, first_idx, _ = rec.ticks[0]
    last_now, last_idx, _ = rec.ticks[-1]
    assert abs((last_now - first_now) / PERIOD - (last_idx - first_idx)) < 1.0


async def test_failing_participant_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    clock = MediaClock()
    rec = Recorder()

    class Broken:
        def tick(self, now: float, tick_index: int) -> None:
            raise RuntimeError("boom")

    class SelfRemoving:
        count = 0

        def tick(self, now: float, tick_index: int) -> None:
            self.count += 1
            clock.remove(self)

    broken, once = Broken(), SelfRemoving()
    clock.add(broken)
    clock.add(once)
    clock.add(rec)
    with caplog.at_level(logging.ERROR, logger="media.clock"):
        clock.start()
        await wait_until(lambda: clock.stats.ticks >= 10)
    assert clock.stats.errors == clock.stats.ticks >= 10
    assert len(rec.ticks) == clock.stats.ticks
    assert once.count == 1
    assert len([r for r in caplog.records if "failed in tick" in r.getMessage()]) == 1  # no log flood

    clock.remove(broken)
    errors, n = clock.stats.errors, len(rec.ticks)
    await wait_until(lambda: len(rec.ticks) >= n + 5)
    assert clock.stats.errors == errors
    await clock.stop()
    n = len(rec.ticks)
    # Stopped means stopped: another clock ticks five times meanwhile, this one not once.
    other, witness = MediaClock(), Recorder()
    other.add(witness)
    other.start()
    await wait_until(lambda: len(witness.ticks) >= 5)
    await other.stop()
    assert len(rec.ticks) == n


async def test_restart_and_percentiles() -> None:
    clock = MediaClock(frame_ms=10, reservoir_size=16)
    rec = Recorder()
    clock.add(rec)
    clock.start()
    clock.start()  # idempotent
    await wait_until(lambda: clock.stats.ticks >= 25)
    await clock.stop()
    clock.start()
    await wait_until(lambda: clock.stats.ticks >= 35)  # restarted: ticking again
    await clock.stop()
    st = clock.stats
    assert st.ticks >= 35
    assert len(st._lateness) == 16
    assert 0.0 <= st.p50_ms <= st.p99_ms <= st.max_lateness_ms + 1e-9
    assert st.work_percentile(50) >= 0.0
    with pytest.raises(ValueError):
        MediaClock(frame_ms=0)


async def test_prepare_phase_and_batches_run_in_order_each_tick() -> None:
    clock = MediaClock()
    order: list[str] = []

    class Preparing:
        def prepare(self, now: float) -> None:
            order.append("prepare")

        def tick(self, now: float, tick_index: int) -> None:
            order.append("tick")

    class Plain:
        def tick(self, now: float, tick_index: int) -> None:
            order.append("plain")

    def failing_batch() -> None:
        order.append("batch")
        raise RuntimeError("one batch failed")

    clock.add(Preparing())
    clock.add(Plain())
    clock.add_batch(failing_batch)
    clock.start()
    await wait_until(lambda: order.count("plain") >= 4)
    await clock.stop()
    ticks = [order[i : i + 5] for i in range(0, len(order) - len(order) % 5, 5)]
    assert len(ticks) >= 3
    assert all(t == ["prepare", "batch", "tick", "plain", "batch"] for t in ticks)
    assert clock.stats.errors == 2 * len(ticks)  # counted, and the clock kept going


async def test_phases_spread_participants_over_the_frame() -> None:
    clock = MediaClock(phases=4)
    recs = [Recorder() for _ in range(8)]
    for rec in recs:
        clock.add(rec)
    batches: list[float] = []
    clock.add_batch(lambda: batches.append(time.monotonic()))
    clock.start()
    await wait_until(lambda: min(len(rec.ticks) for rec in recs) >= 25)  # half a second
    await clock.stop()
    for rec in recs:
        indices = [i for _, i, _ in rec.ticks]
        assert indices == list(range(indices[0], indices[0] + len(indices)))  # once per frame, none skipped
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(rec.ticks)]
        assert sum(gaps) / len(gaps) == pytest.approx(PERIOD, abs=0.002)
    # Two participants per group; groups tick a quarter frame apart (a tick may fire up to 2 ms
    # early or run a little late: each participant's median offset is rounded to its quarter).
    quarters = [
        round(statistics.median((now - clock._t0) % PERIOD for now, _, _ in rec.ticks) / (PERIOD / 4)) % 4
        for rec in recs
    ]
    assert sorted(quarters) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(batches) == clock.stats.ticks  # no prepare phase here: one batch run per sub-tick
    with pytest.raises(ValueError):
        MediaClock(phases=0)


async def test_due_sub_ticks_run_before_other_ready_callbacks() -> None:
    """After a stall, the sub-ticks already due run back to back, not each behind a loop
    iteration of other work: a busy control plane must not push the calls' audio back."""
    clock = MediaClock(phases=4)
    events: list[str] = []

    class Member:
        def __init__(self, name: str) -> None:
            self.name = name

        def tick(self, now: float, tick_index: int) -> None:
            events.append(self.name)
            if self.name == "g0" and tick_index == 5:
                time.sleep(0.012)  # a test-only stall: the next two sub-ticks become due

    for g in range(4):
        clock.add(Member(f"g{g}"))
    loop = asyncio.get_running_loop()
    stop = False

    def other_work() -> None:  # always another ready callback, as under a burst of requests
        events.append("other")
        if not stop:
            loop.call_soon(other_work)

    clock.start()
    loop.call_soon(other_work)
    await wait_until(lambda: events.count("g0") >= 8)  # past the stall at g0's 6th tick
    stop = True
    await clock.stop()

    ticks_only = [e for e in events if e != "other"]
    assert ticks_only[:4] == ["g0", "g1", "g2", "g3"]  # each group once per frame, in turn
    # Find the stalling tick of g0 (its 6th); g1 and g2 were due when it ended: they follow it
    # at once, with no other callback between.
    positions = [i for i, e in enumerate(events) if e == "g0"]
    stalled = positions[5]
    assert events[stalled + 1 : stalled + 3] == ["g1", "g2"], events[stalled - 3 : stalled + 8]
