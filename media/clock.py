"""The media clock: one 20 ms tick for every call's audio, on absolute deadlines.

``MediaClock(frame_ms=20, *, phases=1, late_threshold_ms=5.0, reservoir_size=1024, clock=time.monotonic)``
    ``start()`` (inside a running event loop), ``await stop()``,
    ``add(participant)`` / ``remove(participant)``, ``participants`` (count),
    ``running``, ``stats`` (:class:`ClockStats`).

Tick ``i`` is due at ``t0 + i * frame`` (``clock()`` seconds, monotonic), so the
clock never drifts however late single ticks run. A tick that fires more than a
whole frame late skips the deadlines it missed: ``tick_index`` jumps by the number
of missed ticks (counted in ``skipped_ticks``) instead of running them back to
back, so participants see ``tick_index - previous - 1`` skipped ticks and keep
their RTP timestamps on wall time without sending a burst.

``ClockParticipant.tick(now, tick_index)`` must neither block nor raise; an
exception is still caught, counted in ``errors`` and logged (first time per
participant, then every 1000th) so one call cannot stop the others' audio.

With ``phases=n`` the participants are spread over ``n`` groups (each joins the
smallest) whose ticks are ``frame / n`` apart: every participant still ticks once
per frame on its own fixed grid, but the work, and the packets every call sends
at its tick, no longer arrive in one burst (which the far ends echo back as one
burst). Stats and lateness then count those sub-ticks; ``tick_index`` stays the
frame number. Sub-ticks that are already due when one ends (the loop was busy) run
right away in the same callback, so the clock catches up instead of queueing each
behind a whole loop iteration of other work.

Work that is cheaper done for all calls at once (resampling) is batched: a tick
first calls ``prepare(now)`` on the participants that have one, then every
batch added with ``add_batch(run)``, then ``tick`` on every participant, then
the batches again. So a participant can queue work in ``prepare`` and use its
result in ``tick``, and queue work in ``tick`` that is done before the tick ends.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

__all__ = ["LATENESS_BUCKETS_MS", "ClockParticipant", "ClockStats", "MediaClock", "PreparingParticipant"]

log = logging.getLogger(__name__)

# Upper bounds (ms) of the lateness histogram buckets; the last bucket is open.
LATENESS_BUCKETS_MS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)

# uvloop's millisecond timers may fire a fraction of a millisecond early; only an
# earlier wake-up is re-armed rather than ticked.
_EARLY_TOLERANCE_S = 0.002


class ClockParticipant(Protocol):
    def tick(self, now: float, tick_index: int) -> None: ...


class PreparingParticipant(ClockParticipant, Protocol):
    def prepare(self, now: float) -> None: ...


@dataclass(slots=True)
class ClockStats:
    """Counters of one clock. Lateness is how long after its deadline a tick ran."""

    reservoir_size: int = 1024
    ticks: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    errors: int = 0
    max_lateness_ms: float = 0.0
    max_work_ms: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BUCKETS_MS) + 1))
    _lateness: array[float] = field(default_factory=lambda: array("d"))
    _work: array[float] = field(default_factory=lambda: array("d"))
    _pos: int = 0

    def record(self, lateness_ms: float, work_ms: float) -> None:
        self.histogram[bisect.bisect_left(LATENESS_BUCKETS_MS, lateness_ms)] += 1
        if lateness_ms > self.max_lateness_ms:
            self.max_lateness_ms = lateness_ms
        if work_ms > self.max_work_ms:
            self.max_work_ms = work_ms
        # Ring of the most recent ticks: percentiles describe the last ~20 s.
        if len(self._lateness) < self.reservoir_size:
            self._lateness.append(lateness_ms)
            self._work.append(work_ms)
        else:
            pos = self._pos
            self._lateness[pos] = lateness_ms
            self._work[pos] = work_ms
            self._pos = (pos + 1) % self.reservoir_size

    @staticmethod
    def _percentile(samples: array[float], q: float) -> float:
        if not samples:
            return 0.0
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]

    def lateness_percentile(self, q: float) -> float:
        """Lateness (ms) at percentile ``q`` (0..100) over the recent ticks."""
        return self._percentile(self._lateness, q)

    def work_percentile(self, q: float) -> float:
        """Time (ms) spent running all participants of one tick, percentile ``q``."""
        return self._percentile(self._work, q)

    @property
    def p50_ms(self) -> float:
        return self.lateness_percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.lateness_percentile(99)

    def as_dict(self) -> dict[str, object]:
        labels = [f"<={b:g}ms" for b in LATENESS_BUCKETS_MS] + [f">{LATENESS_BUCKETS_MS[-1]:g}ms"]
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "skipped_ticks": self.skipped_ticks,
            "errors": self.errors,
            "max_lateness_ms": round(self.max_lateness_ms, 3),
            "p50_lateness_ms": round(self.p50_ms, 3),
            "p99_lateness_ms": round(self.p99_ms, 3),
            "max_work_ms": round(self.max_work_ms, 3),
            "p50_work_ms": round(self.work_percentile(50), 3),
            "p99_work_ms": round(self.work_percentile(99), 3),
            "lateness_histogram": dict(zip(labels, self.histogram, strict=True)),
        }


class MediaClock:
    """One clock for all calls; see the module docstring."""

    def __init__(
        self,
        frame_ms: int = 20,
        *,
        phases: int = 1,
        late_threshold_ms: float = 5.0,
        reservoir_size: int = 1024,
        on_lateness: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        if phases < 1:
            raise ValueError("phases must be at least 1")
        self.frame_ms = frame_ms
        self.phases = phases
        self._period = frame_ms / 1000.0 / phases  # between sub-ticks
        self._late_threshold = late_threshold_ms / 1000.0
        self.stats = ClockStats(reservoir_size=reservoir_size)
        # Optional observer of each tick's lateness in ms (metrics), outside media/.
        self._on_lateness = on_lateness
        # The `now` every participant gets; the event loop's timers only wait the gaps between.
        self._clock = clock
        self._members: list[ClockParticipant] = []
        self._group_of: dict[int, int] = {}
        self._groups: list[tuple[ClockParticipant, ...]] = [() for _ in range(phases)]
        self._preparing: list[tuple[PreparingParticipant, ...]] = [() for _ in range(phases)]
        self._batches: list[Callable[[], object]] = []
        self._error_counts: dict[int, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._next_index = 0

    # ------------------------------------------------------------------ membership

    def add(self, participant: ClockParticipant) -> None:
        if id(participant) in self._group_of:
            return
        sizes = [len(g) for g in self._groups]
        self._group_of[id(participant)] = sizes.index(min(sizes))
        self._members.append(participant)
        self._refresh()

    def remove(self, participant: ClockParticipant) -> None:
        """Stop ticking ``participant`` (unknown ones are ignored).

        Removal during a tick takes effect from the next tick.
        """
        if self._group_of.pop(id(participant), None) is None:
            return
        self._members = [p for p in self._members if p is not participant]
        self._refresh()
        self._error_counts.pop(id(participant), None)

    def _refresh(self) -> None:
        groups: list[list[ClockParticipant]] = [[] for _ in range(self.phases)]
        for p in self._members:
            groups[self._group_of[id(p)]].append(p)
        self._groups = [tuple(g) for g in groups]
        self._preparing = [
            tuple(cast(PreparingParticipant, p) for p in g if hasattr(p, "prepare")) for g in groups
        ]

    def add_batch(self, run: Callable[[], object]) -> None:
        """Run ``run()`` after the prepare phase and after the tick phase of every tick."""
        self._batches.append(run)

    @property
    def participants(self) -> int:
        return len(self._members)

    @property
    def running(self) -> bool:
        return self._handle is not None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._t0 = self._clock() + self._period
        self._next_index = 0
        self._handle = self._loop.call_later(self._period, self._on_timer)

    async def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
        self._loop = None

    # ------------------------------------------------------------------ ticking

    def _on_timer(self) -> None:
        loop = self._loop
        if loop is None or self._handle is None:
            return
        period = self._period
        index = self._next_index
        deadline = self._t0 + index * period
        now = self._clock()
        if now < deadline - _EARLY_TOLERANCE_S:
            self._handle = loop.call_later(deadline - now, self._on_timer)
            return
        # Sub-ticks already due run here, one after the other, up to one frame's worth.
        # Re-armed for "now" instead, each would wait behind a whole loop iteration of
        # other callbacks: when the loop is busy (a burst of hang-ups, say) the clock
        # would fall behind and stay behind, and the calls' audio would pay for work
        # that can wait.
        for _ in range(self.phases):
            index = self._tick(index, now)
            if self._handle is None:  # a participant stopped the clock
                return
            index += 1
            now = self._clock()
            deadline = self._t0 + index * period
            if now < deadline:
                break
        self._next_index = index
        self._handle = loop.call_later(max(0.0, deadline - now), self._on_timer)

    def _tick(self, index: int, now: float) -> int:
        """Run the sub-tick due at ``index`` (or a later one, if a whole frame was missed);
        returns the index that ran."""
        period = self._period
        lateness = now - (self._t0 + index * period)
        st = self.stats
        if lateness >= period * self.phases:
            # A whole frame behind: skip, so that no participant sends two frames at once.
            # (Sub-ticks less than a frame late just run late, one after the other.)
            missed = int(lateness / period) - self.phases + 1
            index += missed
            st.skipped_ticks += missed
        if lateness > self._late_threshold:
            st.late_ticks += 1
        st.ticks += 1

        group = index % self.phases
        frame = index // self.phases
        preparing = self._preparing[group]
        if preparing:
            for member in preparing:
                try:
                    member.prepare(now)
                except Exception:
                    self._participant_failed(member)
            self._run_batches()
        for participant in self._groups[group]:
            try:
                participant.tick(now, frame)
            except Exception:
                self._participant_failed(participant)
        self._run_batches()

        st.record(max(0.0, lateness) * 1000.0, (self._clock() - now) * 1000.0)
        if self._on_lateness is not None:
            self._on_lateness(max(0.0, lateness) * 1000.0)
        return index

    def _run_batches(self) -> None:
        for run in self._batches:
            try:
                run()
            except Exception:
                self._participant_failed(run)

    def _participant_failed(self, participant: object) -> None:
        self.stats.errors += 1
        key = id(participant)
        n = self._error_counts.get(key, 0) + 1
        self._error_counts[key] = n
        if n == 1 or n % 1000 == 0:
            log.exception("media clock participant %r failed in tick (%d times)", participant, n)
