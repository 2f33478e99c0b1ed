"""Stand-ins for driving the SIP dialer and its call legs in component tests: a clock the test
moves by hand, a scripted SIP user agent (the test plays the far end's events), and a
recorder of what the legs report. The media, the RTP sockets and the agent are real."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.outcome import CallOutcome, CallStatus, HangupCause
from gateway.sip.digest import DigestCredentials
from gateway.sip.useragent import CallEvent, CallEventBody, LegSnapshot, OutboundCallParams


class FakeTimers:
    """`gateway.calls.backend.Timers` on a clock that moves only when the test says."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._queue: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(callback)
        heapq.heappush(self._queue, (when, next(self._seq), handle))
        return handle

    def advance(self, seconds: float) -> None:
        """Move the clock, running every callback that falls due, in order."""
        target = self.now + seconds
        while self._queue and self._queue[0][0] <= target:
            when, _, handle = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            handle.run()
        self.now = target


@dataclass
class _Handle:
    callback: Callable[[], None] | None

    def cancel(self) -> None:
        self.callback = None

    def run(self) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


@dataclass
class ScriptedSip:
    """The dialer's `Signalling`: records what the dialer sends; the test plays what the user
    agent would report with `emit`."""

    placed: list[OutboundCallParams] = field(default_factory=list)
    hangups: list[tuple[str, HangupCause]] = field(default_factory=list)
    released: list[tuple[str, LegSnapshot]] = field(default_factory=list)
    on_event: Callable[[CallEvent], None] | None = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def place_call(self, params: OutboundCallParams) -> None:
        self.placed.append(params)

    def hangup(self, call_ref: str, cause: HangupCause) -> None:
        self.hangups.append((call_ref, cause))

    def release(self, call_ref: str, snapshot: LegSnapshot, credentials: DigestCredentials | None) -> None:
        self.released.append((call_ref, snapshot))

    def emit(self, call_ref: str, *events: CallEventBody) -> None:
        assert self.on_event is not None
        for event in events:
            self.on_event(CallEvent(call_ref, event))

    def placed_ids(self) -> list[str]:
        return [p.call_ref for p in self.placed]


@dataclass
class Reported:
    kind: str
    call_id: str
    outcome: CallOutcome | None
    facts: dict[str, Any]


class RecordingProgress:
    """A `CallProgress` that keeps what it is told, and lets a test wait for it."""

    def __init__(self) -> None:
        self.reports: list[Reported] = []
        self._changed = asyncio.Event()

    async def ringing(self, call_id: str, sip_status: int | None = None, **facts: Any) -> None:
        self._add(Reported("ringing", call_id, None, facts))

    async def answered(self, call_id: str, **facts: Any) -> None:
        self._add(Reported("answered", call_id, None, facts))

    async def ended(self, call_id: str, outcome: CallOutcome, **facts: Any) -> None:
        self._add(Reported("ended", call_id, outcome, facts))

    async def update(self, call_id: str, **fields: Any) -> None:
        self._add(Reported("update", call_id, None, fields))

    def _add(self, report: Reported) -> None:
        self.reports.append(report)
        self._changed.set()

    def kinds(self, call_id: str) -> list[str]:
        return [r.kind for r in self.reports if r.call_id == call_id]

    def outcome(self, call_id: str) -> CallOutcome | None:
        ended = [r.outcome for r in self.reports if r.call_id == call_id and r.kind == "ended"]
        assert len(ended) <= 1, ended
        return ended[0] if ended else None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_ended(self, call_id: str, timeout: float = 10.0) -> CallOutcome:
        await self.wait_for(lambda: self.outcome(call_id) is not None, timeout)
        outcome = self.outcome(call_id)
        assert outcome is not None
        return outcome


def outcome(status: CallStatus, cause: HangupCause, **kw: Any) -> CallOutcome:
    return CallOutcome(status, cause, **kw)
