"""Trunk slots: a call holds one from its INVITE until its carrier leg is over, at most
`max_concurrent` per trunk, handed out no faster than `calls_per_second`.

`LocalSlots` counts them in memory: exact for one node alone on its database. `SharedSlots`
counts them in the database for every node on it. There a slot is a call's `trunk_slot`
flag, counted while the call is live, so a slot is freed by the call's final status whichever
node writes it (its own, or the peer that settles a lost node's calls). Pacing is one row per trunk: when the next INVITE may go. Both are read and
written in one transaction under the trunk's advisory lock, so the limits hold across nodes:
never over; under by the time between a call's end on the wire and its final status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from gateway.config import TrunkConfig
from gateway.store.calls import live_on_trunk, lock_trunk
from gateway.store.commit import GroupCommit
from gateway.store.models import CallRow, TrunkPacingRow
from gateway.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to a request for a slot. Refused: try again at `retry_at` (monotonic
    seconds), or, when None, once a slot of this node frees up."""

    ok: bool
    retry_at: float | None = None


GRANTED = Grant(True)


class TrunkSlots(Protocol):
    async def acquire(self, trunk: TrunkConfig, call_id: str, now: float) -> Grant:
        """A slot for the call (counted against max_concurrent), if the rate allows it now."""
        ...

    def release(self, trunk: TrunkConfig, call_id: str) -> None:
        """The call's slot is free again (its carrier leg is over)."""
        ...


class LocalSlots:
    """One node alone on its database: slots and pacing counted in memory, exactly."""

    def __init__(self) -> None:
        self._active: dict[str, int] = {}
        self._next_slot: dict[str, float] = {}

    def active(self, trunk_id: str) -> int:
        return self._active.get(trunk_id, 0)

    async def acquire(self, trunk: TrunkConfig, call_id: str, now: float) -> Grant:
        return self.try_acquire(trunk, now)

    def try_acquire(self, trunk: TrunkConfig, now: float) -> Grant:
        if self.active(trunk.id) >= trunk.max_concurrent:
            return Grant(False)
        next_slot = self._next_slot.get(trunk.id, 0.0)
        if now < next_slot:
            return Grant(False, next_slot)
        self._active[trunk.id] = self.active(trunk.id) + 1
        # Idle time does not build up a burst: the next slot is one interval after this one.
        self._next_slot[trunk.id] = max(now, next_slot) + 1.0 / trunk.calls_per_second
        return GRANTED

    def release(self, trunk: TrunkConfig, call_id: str) -> None:
        self._active[trunk.id] = max(0, self.active(trunk.id) - 1)


# How soon a node asks again for a slot of a full trunk (a slot freed on another node is not
# announced; a slot freed on this node wakes its queue at once).
FULL_RETRY_SECONDS = 0.25


class SharedSlots:
    def __init__(self, writes: GroupCommit, wall_clock: Callable[[], datetime] = utcnow) -> None:
        self._writes = writes
        self._wall_clock = wall_clock

    async def acquire(self, trunk: TrunkConfig, call_id: str, now: float) -> Grant:
        interval = timedelta(seconds=1.0 / trunk.calls_per_second)

        def write(s: Session) -> float | None:
            """None: granted; else seconds to wait."""
            lock_trunk(s, trunk.id)
            wall = self._wall_clock()  # taken under the lock: the nodes' decisions are ordered
            if live_on_trunk(s, trunk.id, with_slot=True) >= trunk.max_concurrent:
                return FULL_RETRY_SECONDS
            pacing = s.get(TrunkPacingRow, trunk.id)
            if pacing is not None and wall < pacing.next_slot_at:
                return (pacing.next_slot_at - wall).total_seconds()
            s.execute(update(CallRow).where(CallRow.id == call_id).values(trunk_slot=True))
            next_slot = max(wall, pacing.next_slot_at if pacing is not None else wall) + interval
            if pacing is None:
                s.execute(insert(TrunkPacingRow).values(trunk_id=trunk.id, next_slot_at=next_slot))
            else:
                pacing.next_slot_at = next_slot
            return None

        wait = await self._writes.run(write)
        return GRANTED if wait is None else Grant(False, now + wait)

    def release(self, trunk: TrunkConfig, call_id: str) -> None:
        """Nothing to do: the slot is freed when the call's final status is stored."""
