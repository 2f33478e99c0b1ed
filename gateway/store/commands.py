"""Requests to the node that carries a call ("hang it up"), kept in the database until that node
has done them, so a missed notification only delays a request (it is polled too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from gateway.store.commit import GroupCommit
from gateway.store.models import CommandRow


@dataclass(frozen=True)
class Command:
    id: int
    call_id: str
    node_id: str
    kind: str
    cause: str
    requested_by: str


class CommandStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writes: GroupCommit) -> None:
        self._sessions = sessions
        self._writes = writes

    async def request(self, *, call_id: str, node_id: str, kind: str, cause: str, by: str, now: datetime) -> int:
        def write(s: Session) -> int:
            stmt = insert(CommandRow).values(
                call_id=call_id, node_id=node_id, kind=kind, cause=cause, requested_by=by, requested_at=now
            ).returning(CommandRow.id)
            return int(s.execute(stmt).scalar_one())

        return int(await self._writes.run(write))

    async def claim(self, node_id: str, now: datetime) -> list[Command]:
        """The node's requests nobody has taken yet, now taken by it (each exactly once)."""

        def write(s: Session) -> list[Command]:
            rows = s.execute(
                select(CommandRow).where(CommandRow.node_id == node_id, CommandRow.claimed_at.is_(None))
            ).scalars().all()
            taken: list[Command] = []
            for row in rows:
                done = s.execute(
                    update(CommandRow).where(CommandRow.id == row.id, CommandRow.claimed_at.is_(None)).values(claimed_at=now)
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    taken.append(Command(row.id, row.call_id, row.node_id, row.kind, row.cause, row.requested_by))
            return taken

        return list(await self._writes.run(write))

    async def done(self, command_id: int, now: datetime) -> None:
        await self._writes.execute(update(CommandRow).where(CommandRow.id == command_id).values(done_at=now))

    async def pending(self, node_id: str) -> int:
        async with self._sessions() as s:
            rows = await s.execute(select(CommandRow.id).where(CommandRow.node_id == node_id, CommandRow.done_at.is_(None)))
            return len(rows.all())
