"""Gateway nodes and their leases.

A node registers at start (state `up`) and renews its lease every few seconds; a graceful stop
marks it `stopped`. A node whose lease ran out is lost: exactly one peer claims it (a
conditional UPDATE on the renewal it saw), ends its calls and marks it `lost`. A node that
comes back under the same id registers again; the calls a peer settled stay settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from gateway.store.commit import GroupCommit
from gateway.store.models import NodeRow


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    state: str
    version: str
    http_url: str | None
    sip_address: str | None
    started_at: datetime
    renewed_at: datetime
    lease_seconds: float
    lost_at: datetime | None
    reaped_by: str | None

    def expired(self, now: datetime) -> bool:
        return self.state == "up" and self.renewed_at + timedelta(seconds=self.lease_seconds) < now


def _info(row: NodeRow) -> NodeInfo:
    return NodeInfo(
        node_id=row.node_id,
        state=row.state,
        version=row.version,
        http_url=row.http_url,
        sip_address=row.sip_address,
        started_at=row.started_at,
        renewed_at=row.renewed_at,
        lease_seconds=row.lease_seconds,
        lost_at=row.lost_at,
        reaped_by=row.reaped_by,
    )


class NodeStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writes: GroupCommit) -> None:
        self._sessions = sessions
        self._writes = writes

    async def get(self, node_id: str) -> NodeInfo | None:
        async with self._sessions() as s:
            row = await s.get(NodeRow, node_id)
            return _info(row) if row is not None else None

    async def all(self) -> list[NodeInfo]:
        return await list_nodes(self._sessions)

    async def register(
        self,
        node_id: str,
        now: datetime,
        *,
        version: str,
        http_url: str | None,
        sip_address: str | None,
        lease_seconds: float,
    ) -> None:
        values = {
            "state": "up",
            "version": version,
            "http_url": http_url,
            "sip_address": sip_address,
            "started_at": now,
            "renewed_at": now,
            "lease_seconds": lease_seconds,
            "lost_at": None,
            "reaped_by": None,
        }

        def write(s: Session) -> None:
            if s.execute(update(NodeRow).where(NodeRow.node_id == node_id).values(**values)).rowcount == 0:  # type: ignore[attr-defined]
                s.execute(insert(NodeRow).values(node_id=node_id, **values))

        await self._writes.run(write)

    async def renew(self, node_id: str, now: datetime) -> bool:
        """Extend the lease; False when the node is no longer `up` (a peer declared it lost)."""

        def write(s: Session) -> bool:
            stmt = update(NodeRow).where(NodeRow.node_id == node_id, NodeRow.state == "up").values(renewed_at=now)
            return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

        return bool(await self._writes.run(write))

    async def stopped(self, node_id: str, now: datetime) -> None:
        await self._writes.execute(
            update(NodeRow).where(NodeRow.node_id == node_id, NodeRow.state == "up").values(state="stopped", renewed_at=now)
        )

    async def claim_lost(self, node: NodeInfo, by: str, now: datetime) -> bool:
        """Take over a node whose lease ran out: True for exactly one claimer, and only if the
        node did not renew since `node` was read."""

        def write(s: Session) -> bool:
            stmt = (
                update(NodeRow)
                .where(NodeRow.node_id == node.node_id, NodeRow.state == "up", NodeRow.renewed_at == node.renewed_at)
                .values(state="lost", lost_at=now, reaped_by=by)
            )
            return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

        return bool(await self._writes.run(write))


async def list_nodes(sessions: async_sessionmaker[AsyncSession]) -> list[NodeInfo]:
    async with sessions() as s:
        rows = (await s.execute(select(NodeRow).order_by(NodeRow.node_id))).scalars().all()
    return [_info(r) for r in rows]
