"""Per-trunk admission: at most `max_concurrent` calls, INVITEs spaced by `calls_per_second`,
and a bounded FIFO of calls waiting for either, each for at most `queue_timeout_seconds`.
Pure: the dialer passes `now` and acts on what it returns.

A call takes its place in two steps, because it is stored in between: `reserve()` before
anything is awaited (so concurrent requests cannot all pass the check and overfill the
queue), then `enqueue()` once the call is stored, or `cancel_reservation()` if it was not.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from gateway.config import TrunkConfig
from gateway.errors import RateLimited


@dataclass(frozen=True, slots=True)
class GateTurn:
    """What the dialer does now: dial `ready`, give up `expired`, look again at `wake`."""

    ready: list[str]
    expired: list[str]
    wake: float | None


@dataclass
class TrunkGate:
    trunk: TrunkConfig
    active: int = 0
    reserved: int = 0  # admitted, still being stored
    next_slot: float = 0.0
    waiting: deque[tuple[str, float]] = field(default_factory=deque)  # (call id, give up at)

    @property
    def interval(self) -> float:
        return 1.0 / self.trunk.calls_per_second

    @property
    def pending(self) -> int:
        """Calls admitted and not yet dialled."""
        return len(self.waiting) + self.reserved

    def reserve(self) -> None:
        """Hold a place for a new call, or raise RateLimited (the API answers 429).

        Of the calls admitted and not yet dialled, those that find a free concurrent slot
        go out as fast as the rate allows; the rest wait in the queue, which holds at most
        queue_size. So at most max_concurrent + queue_size calls are in flight."""
        pending = self.pending
        free_slots = max(0, self.trunk.max_concurrent - self.active)
        if pending >= free_slots + self.trunk.queue_size:
            retry = max(1, math.ceil(pending * self.interval))
            raise RateLimited(
                f"Trunk '{self.trunk.id}' is at its call limit; try again shortly",
                retry_after=retry,
                limit=self.trunk.max_concurrent,
                window="concurrent",
            )
        self.reserved += 1

    def cancel_reservation(self) -> None:
        self.reserved = max(0, self.reserved - 1)

    def enqueue(self, call_id: str, now: float) -> None:
        """The reserved call, now stored, waits for its turn (at most queue_timeout_seconds)."""
        self.cancel_reservation()
        self.waiting.append((call_id, now + self.trunk.queue_timeout_seconds))

    def remove(self, call_id: str) -> bool:
        for item in self.waiting:
            if item[0] == call_id:
                self.waiting.remove(item)
                return True
        return False

    def due(self, now: float) -> GateTurn:
        """Calls to dial now (in order), calls that waited too long, and when to look again."""
        expired: list[str] = []
        # One timeout for the trunk: the queue is ordered by give-up time too.
        while self.waiting and self.waiting[0][1] <= now:
            expired.append(self.waiting.popleft()[0])
        ready: list[str] = []
        wake: float | None = None
        while self.waiting and self.active < self.trunk.max_concurrent:
            if now < self.next_slot:
                wake = self.next_slot
                break
            ready.append(self.waiting.popleft()[0])
            self.active += 1
            self.next_slot = max(now, self.next_slot) + self.interval
        if self.waiting:
            give_up = self.waiting[0][1]
            wake = give_up if wake is None else min(wake, give_up)
        return GateTurn(ready, expired, wake)

    def release(self) -> None:
        self.active = max(0, self.active - 1)
