"""Fake clocks for the media tests, and waiting on conditions instead of sleeping.

``FakeClock`` is a callable returning seconds (what the media modules take as ``clock``)
whose ``sleep`` (what they take as ``sleep``) returns only once the test has moved the
clock past its deadline with ``advance``. ``sleeping`` lists the pending deadlines, so a
test can wait until the code under test is waiting, then decide when its time is up.

``ShiftedClock`` runs with the real monotonic clock, plus whatever the test added with
``advance``: for components on real sockets and event-loop timers (a running MediaClock)
where a test skips a long wait (a learn window, a media timeout) instead of sitting it out.

``wait_until`` polls a condition on the event loop; the timeout only bounds a failing test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    @property
    def sleeping(self) -> list[float]:
        """How long each pending sleep() has left to wait (to the microsecond), soonest first."""
        return sorted(round(deadline - self.now, 6) for deadline, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + max(0.0, seconds), fut))
        self._wake()
        await fut

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._wake()

    def _wake(self) -> None:
        keep = []
        for deadline, fut in self._sleepers:
            if fut.done():
                continue
            if deadline <= self.now:
                fut.set_result(None)
            else:
                keep.append((deadline, fut))
        self._sleepers = keep


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"{what} not reached within {timeout} s"
        await asyncio.sleep(0.002)
