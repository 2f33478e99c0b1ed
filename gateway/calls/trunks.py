"""Each node's queue of calls waiting for one of their trunk's slots (`gateway.store.slots`:
`max_concurrent` calls at once, INVITEs spaced by `calls_per_second`), each for at most
`queue_timeout_seconds`.

How many calls may wait at all (`max_concurrent + queue_size` in flight per trunk) is
checked when the call is stored, in the same transaction (`CallStore.insert`), so concurrent
requests on any number of nodes cannot overfill it.
"""

from __future__ import annotations

from collections import deque

from gateway.config import TrunkConfig


class TrunkQueue:
    """This node's calls waiting for a slot of one trunk, in order, each until its give-up time."""

    def __init__(self, trunk: TrunkConfig) -> None:
        self.trunk = trunk
        self._waiting: deque[tuple[str, float]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, call_id: str, now: float) -> None:
        self._waiting.append((call_id, now + self.trunk.queue_timeout_seconds))

    def head(self) -> str | None:
        return self._waiting[0][0] if self._waiting else None

    def pop(self) -> str:
        return self._waiting.popleft()[0]

    def remove(self, call_id: str) -> bool:
        for item in self._waiting:
            if item[0] == call_id:
                self._waiting.remove(item)
                return True
        return False

    def expired(self, now: float) -> list[str]:
        """Calls that waited their whole queue_timeout_seconds (removed from the queue)."""
        out: list[str] = []
        # One timeout per trunk: the queue is ordered by give-up time too.
        while self._waiting and self._waiting[0][1] <= now:
            out.append(self._waiting.popleft()[0])
        return out

    def next_give_up(self) -> float | None:
        return self._waiting[0][1] if self._waiting else None
