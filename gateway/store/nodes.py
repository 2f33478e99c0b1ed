"""Gateway nodes: when each was last known to be alive and carrying its calls (a heartbeat)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from gateway.store.commit import GroupCommit
from gateway.store.models import NodeRow


class NodeStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writes: GroupCommit) -> None:
        self._sessions = sessions
        self._writes = writes

    async def last_seen(self, node_id: str) -> datetime | None:
        """The node's last heartbeat (of its previous run, when read before this run's first)."""
        async with self._sessions() as s:
            row = await s.get(NodeRow, node_id)
            return row.heartbeat_at if row is not None else None

    async def started(self, node_id: str, now: datetime) -> None:
        def write(s: Session) -> None:
            values = {"started_at": now, "heartbeat_at": now}
            if s.execute(update(NodeRow).where(NodeRow.node_id == node_id).values(**values)).rowcount == 0:  # type: ignore[attr-defined]
                s.execute(insert(NodeRow).values(node_id=node_id, **values))

        await self._writes.run(write)

    async def beat(self, node_id: str, now: datetime) -> None:
        await self._writes.execute(update(NodeRow).where(NodeRow.node_id == node_id).values(heartbeat_at=now))

    async def all(self) -> list[NodeRow]:
        async with self._sessions() as s:
            return list((await s.execute(select(NodeRow))).scalars().all())
