"""Call persistence: one row per call, with every status change and its event in one transaction."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from gateway.ids import new_event_id, new_id
from gateway.outcome import ACTIVE, EVENT_TYPE, CallStatus, sources_of
from gateway.store.commit import GroupCommit
from gateway.store.models import CallRow, DeliveryRow, EventRow, SecretRow
from gateway.store.records import Call, ListFilters, Page
from gateway.timeutil import iso

# Call dataclass field -> column attribute, where the names differ.
_COLUMN = {"to": "to_number", "from_": "from_number", "metadata": "call_metadata"}
_STAMP = {
    CallStatus.RINGING: "ringing_at",
    CallStatus.IN_PROGRESS: "answered_at",
}

WebhookTargets = Callable[[Call], Sequence[str]]
# The event payload's `data`: the call as the API shows it (gateway.calls.views.call_view).
RenderCall = Callable[[Call], dict[str, Any]]


def _row_to_call(row: CallRow) -> Call:
    values: dict[str, Any] = {}
    for f in fields(Call):
        values[f.name] = getattr(row, _COLUMN.get(f.name, f.name))
    values["status"] = CallStatus(values["status"])
    values["metadata"] = values["metadata"] or {}
    return Call(**values)


class TrunkFull(Exception):
    """The call's trunk has as many live calls as it may hold (carried and queued)."""

    def __init__(self, live: int) -> None:
        super().__init__(f"{live} live calls on the trunk")
        self.live = live


_LIVE = [str(s) for s in ACTIVE]


def lock_trunk(s: Session, trunk_id: str) -> None:
    """Serialize, until the transaction ends, what nodes decide about one trunk (PostgreSQL;
    SQLite has a single writer already)."""
    if s.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(f"trunk:{trunk_id}".encode(), digest_size=8).digest(), "big", signed=True)
        s.execute(select(func.pg_advisory_xact_lock(key)))


def live_on_trunk(s: Session, trunk_id: str, *, with_slot: bool = False) -> int:
    stmt = select(func.count()).select_from(CallRow).where(CallRow.trunk_id == trunk_id, CallRow.status.in_(_LIVE))
    if with_slot:
        stmt = stmt.where(CallRow.trunk_slot.is_(True))
    return int(s.execute(stmt).scalar_one())


def _columns(changes: dict[str, Any]) -> dict[str, Any]:
    return {_COLUMN.get(k, k): v for k, v in changes.items()}


async def live_counts_by_node(sessions: async_sessionmaker[AsyncSession]) -> dict[str | None, int]:
    async with sessions() as s:
        stmt = select(CallRow.node_id, func.count()).where(CallRow.status.in_(_LIVE)).group_by(CallRow.node_id)
        return {node: int(n) for node, n in (await s.execute(stmt)).all()}


class CallStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: GroupCommit,
        webhook_targets: WebhookTargets,
        render: RenderCall,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        # Reads use the async sessions; writes go through the group commit.
        self._sessions = sessions
        self._writes = writes
        self._targets = webhook_targets
        self._render = render
        # Called after a transaction with a new event committed (wakes the webhook sender).
        self._on_event = on_event

    async def insert(self, call: Call, *, trunk_capacity: int | None = None) -> Call:
        """Store a new call and its `call.initiated` event.

        With `trunk_capacity`, only if fewer calls of its trunk are live (on any node) than
        that, counted in the same transaction (under a per-trunk lock on PostgreSQL; SQLite
        has one writer), so concurrent requests cannot overfill a trunk. Raises TrunkFull."""
        call.event_seq = 1
        row = _columns({f.name: getattr(call, f.name) for f in fields(Call)})

        def write(s: Session) -> int | None:
            if trunk_capacity is not None and call.trunk_id is not None:
                lock_trunk(s, call.trunk_id)
                live = live_on_trunk(s, call.trunk_id)
                if live >= trunk_capacity:
                    return live  # refused: returned, not raised, so the batch is not rolled back
            s.add(CallRow(**row))
            s.flush()
            self._add_event(s, call, EVENT_TYPE[call.status], call.created_at)
            return None

        refused = await self._writes.run(write)
        if refused is not None:
            raise TrunkFull(refused)
        self._notify()
        return call

    async def get(self, call_id: str, account_id: str | None = None) -> Call | None:
        async with self._sessions() as s:
            stmt = select(CallRow).where(CallRow.id == call_id)
            if account_id is not None:
                stmt = stmt.where(CallRow.account_id == account_id)
            row = (await s.execute(stmt)).scalar_one_or_none()
            return _row_to_call(row) if row else None

    async def page(
        self, account_id: str, filters: ListFilters, after: tuple[datetime, str] | None, limit: int
    ) -> Page:
        """Newest first; keyset pagination on (created_at, id) so pages never repeat or skip."""
        conds = [CallRow.account_id == account_id]
        if filters.status is not None:
            conds.append(CallRow.status == str(filters.status))
        if filters.from_ is not None:
            conds.append(CallRow.from_number == filters.from_)
        if filters.to is not None:
            conds.append(CallRow.to_number == filters.to)
        async with self._sessions() as s:
            total = (await s.execute(select(func.count()).select_from(CallRow).where(*conds))).scalar_one()
            page_conds = list(conds)
            if after is not None:
                created, cid = after
                page_conds.append(
                    or_(CallRow.created_at < created, and_(CallRow.created_at == created, CallRow.id < cid))
                )
            stmt = (
                select(CallRow)
                .where(*page_conds)
                .order_by(CallRow.created_at.desc(), CallRow.id.desc())
                .limit(limit + 1)
            )
            rows = (await s.execute(stmt)).scalars().all()
        calls = [_row_to_call(r) for r in rows[:limit]]
        has_more = len(rows) > limit
        last = (calls[-1].created_at, calls[-1].id) if calls and has_more else None
        return Page(calls=calls, total=int(total), has_more=has_more, after=last)

    async def transition(self, call_id: str, to: CallStatus, now: datetime, **changes: Any) -> Call | None:
        """Move the call to `to` if the table allows it from its current status.

        The check is part of the UPDATE, so two nodes (or a hangup racing an answer)
        cannot both win. Returns the updated call, or None when the move is not allowed.
        """
        values = _columns(changes)
        values["status"] = str(to)
        values["event_seq"] = CallRow.event_seq + 1
        if to in _STAMP:
            values[_STAMP[to]] = now
        if to.terminal:
            values.setdefault("ended_at", now)  # a settled call may have ended earlier than now
        stmt = (
            update(CallRow)
            .where(CallRow.id == call_id, CallRow.status.in_([str(x) for x in sources_of(to)]))
            .values(**values)
            .returning(CallRow)
        )
        return await self._update_with_event(stmt, EVENT_TYPE[to], now)

    async def update(self, call_id: str, **changes: Any) -> None:
        """Change fields that are not a status (SIP Call-ID, agent summary, media stats...)."""
        await self._writes.execute(update(CallRow).where(CallRow.id == call_id).values(**_columns(changes)))

    async def add_event(self, call_id: str, event_type: str, now: datetime, **changes: Any) -> Call | None:
        """Record an event that is not a status change (e.g. call.recording_ready), with optional field changes."""
        values = _columns(changes)
        values["event_seq"] = CallRow.event_seq + 1
        stmt = update(CallRow).where(CallRow.id == call_id).values(**values).returning(CallRow)
        return await self._update_with_event(stmt, event_type, now)

    async def _update_with_event(self, stmt: Any, event_type: str, now: datetime) -> Call | None:
        """Run an UPDATE ... RETURNING of one call and, if it matched, add `event_type` in the
        same transaction. None when no row matched."""

        def write(s: Session) -> Call | None:
            row = s.execute(stmt).scalar_one_or_none()
            if row is None:
                return None
            call = _row_to_call(row)
            self._add_event(s, call, event_type, now)
            return call

        call = await self._writes.run(write)
        if call is not None:
            self._notify()
        return call

    async def active(self, node_id: str | None = None, *, include_unowned: bool = True) -> list[Call]:
        """Calls not yet in a final status (optionally only those a given node ran; calls
        stored before nodes were recorded count as the node's unless `include_unowned` is off)."""
        async with self._sessions() as s:
            stmt = select(CallRow).where(CallRow.status.in_(_LIVE))
            if node_id is not None:
                mine = CallRow.node_id == node_id
                stmt = stmt.where(or_(mine, CallRow.node_id.is_(None)) if include_unowned else mine)
            rows = (await s.execute(stmt)).scalars().all()
        return [_row_to_call(r) for r in rows]

    async def live_by_node(self) -> dict[str | None, int]:
        """How many live calls each node carries."""
        return await live_counts_by_node(self._sessions)

    async def events(self, call_id: str) -> list[EventRow]:
        async with self._sessions() as s:
            stmt = select(EventRow).where(EventRow.call_id == call_id).order_by(EventRow.seq)
            return list((await s.execute(stmt)).scalars().all())

    async def secret(self, name: str, nbytes: int = 32) -> str:
        """A named random secret kept in the database, created once and shared by all nodes."""
        async with self._sessions.begin() as s:
            row = await s.get(SecretRow, name)
            if row is not None:
                return row.value
        candidate = secrets.token_hex(nbytes)
        try:
            async with self._sessions.begin() as s:
                await s.execute(insert(SecretRow).values(name=name, value=candidate))
        except IntegrityError:
            pass  # another node inserted first; read its value
        async with self._sessions() as s:
            row = await s.get(SecretRow, name)
            assert row is not None
            return row.value

    def _notify(self) -> None:
        if self._on_event is not None:
            self._on_event()

    def _add_event(self, s: Session, call: Call, event_type: str, now: datetime) -> None:
        event_id = new_event_id()
        payload = {"id": event_id, "type": event_type, "created_at": iso(now), "data": self._render(call)}
        s.add(
            EventRow(
                id=event_id,
                call_id=call.id,
                account_id=call.account_id,
                seq=call.event_seq,
                type=event_type,
                created_at=now,
                payload=payload,
            )
        )
        s.flush()
        for url in dict.fromkeys(self._targets(call)):
            s.add(
                DeliveryRow(
                    delivery_id=new_id("dlv"),
                    event_id=event_id,
                    call_id=call.id,
                    seq=call.event_seq,
                    url=url,
                    state="pending",
                    attempts=0,
                    next_attempt_at=now + timedelta(0),
                )
            )
