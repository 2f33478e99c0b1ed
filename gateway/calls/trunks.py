"""Per-trunk admission: at most `max_concurrent` calls, INVITEs spaced by `calls_per_second`,
and a bounded FIFO of calls waiting for either. Pure: the dialer passes `now` and acts on what it returns.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from gateway.config import TrunkConfig
from gateway.errors import RateLimited


@dataclass
class TrunkGate:
    trunk: TrunkConfig
    active: int = 0
    next_slot: float = 0.0
    waiting: deque[str] = field(default_factory=deque)

    @property
    def interval(self) -> float:
        return 1.0 / self.trunk.calls_per_second

    def check_admission(self) -> None:
        """Raise RateLimited when the waiting queue is full (the API answers 429)."""
        if len(self.waiting) >= self.trunk.queue_size and not self._can_dial_now_ignoring_time():
            retry = max(1, math.ceil(len(self.waiting) * self.interval))
            raise RateLimited(
                f"Trunk '{self.trunk.id}' is at its call limit; try again shortly",
                retry_after=retry,
                limit=self.trunk.max_concurrent,
                window="concurrent",
            )

    def _can_dial_now_ignoring_time(self) -> bool:
        return not self.waiting and self.active < self.trunk.max_concurrent

    def enqueue(self, call_id: str) -> None:
        self.waiting.append(call_id)

    def remove(self, call_id: str) -> bool:
        try:
            self.waiting.remove(call_id)
        except ValueError:
            return False
        return True

    def due(self, now: float) -> tuple[list[str], float | None]:
        """Calls to dial now, in order, and when to look again (None: nothing waits or a slot must free up)."""
        ready: list[str] = []
        while self.waiting and self.active < self.trunk.max_concurrent:
            if now < self.next_slot:
                return ready, self.next_slot
            ready.append(self.waiting.popleft())
            self.active += 1
            self.next_slot = max(now, self.next_slot) + self.interval
        return ready, None

    def release(self) -> None:
        self.active = max(0, self.active - 1)
