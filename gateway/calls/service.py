"""CallService: the one owner of call records and their status changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from gateway import metrics
from gateway.calls.backend import CallBackend
from gateway.calls.model import Call, ListFilters, Page
from gateway.config import AccountConfig, Settings
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.ids import new_call_id
from gateway.jsonutil import clean_text
from gateway.logs import call_id_var
from gateway.numbers import InvalidNumber, parse_e164
from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.store.calls import CallStore
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.calls")

T = TypeVar("T")


class CallRequest:
    """A validated `POST /v1/voice/calls` body (shapes checked by the API schema)."""

    __slots__ = ("agent_id", "from_", "max_duration", "metadata", "record", "to", "webhook_url")

    def __init__(
        self,
        *,
        to: str,
        from_: str | None,
        agent_id: str | None,
        webhook_url: str | None,
        record: bool,
        max_duration: int,
        metadata: dict[str, Any],
    ) -> None:
        self.to = to
        self.from_ = from_
        self.agent_id = agent_id
        self.webhook_url = webhook_url
        self.record = record
        self.max_duration = max_duration
        self.metadata = metadata


class CallService:
    def __init__(self, settings: Settings, store: CallStore, backend: CallBackend, node_id: str) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend
        self.node_id = node_id
        self.hangup_wait_seconds = 35.0
        self.store_retry_seconds = 120.0
        self._ended: dict[str, asyncio.Event] = {}

    # --- API side -------------------------------------------------------------------------

    async def create(self, account: AccountConfig, req: CallRequest) -> Call:
        from_ = req.from_ or account.default_from
        if from_ is None:
            raise ValidationFailed(
                "The 'from' field is required: this account has no default outbound number",
                field="from",
                code="MISSING_REQUIRED_FIELD",
            )
        if from_ not in account.numbers:
            raise ValidationFailed(
                "The 'from' number is not registered to this account",
                field="from",
                code="INVALID_FROM_NUMBER",
                value=from_,
                expected="one of the account's registered numbers",
            )
        if req.agent_id is not None and self.settings.agent(req.agent_id) is None:
            raise ValidationFailed(
                f"No agent with id '{req.agent_id}'",
                field="agent_id",
                code="AGENT_NOT_FOUND",
                value=req.agent_id,
            )
        if account.number_validation == "valid":
            try:
                parse_e164(req.to, require_valid=True)
            except InvalidNumber as exc:
                raise ValidationFailed(
                    f"The 'to' field must be a valid phone number: the number {exc.reason}",
                    field="to",
                    code="INVALID_PHONE_NUMBER",
                    value=req.to,
                    expected="a number in a range assigned to a carrier",
                ) from None
        trunk = self.settings.route(req.to)
        if trunk is None:
            raise ValidationFailed(
                "No trunk routes calls to this number", field="to", code="NO_ROUTE", value=req.to
            )
        call = Call(
            id=new_call_id(),
            account_id=account.id,
            to=req.to,
            from_=from_,
            agent_id=req.agent_id,
            status=CallStatus.INITIATING,
            record=req.record,
            max_duration=req.max_duration,
            metadata=req.metadata,
            webhook_url=req.webhook_url,
            created_at=utcnow(),
            trunk_id=trunk.id,
            node_id=self.node_id,
            recording_state="pending" if req.record else None,
        )
        self.backend.admit(call)
        try:
            await self.store.insert(call)
        except BaseException:
            self.backend.withdraw(call)
            raise
        metrics.call_started(call.id)
        token = call_id_var.set(call.id)
        try:
            log.info("call created", extra={"to": call.to, "trunk": trunk.id, "agent_id": call.agent_id})
            await self.backend.dial(call)
        finally:
            call_id_var.reset(token)
        return call

    async def get(self, account_id: str, call_id: str) -> Call:
        call = await self.store.get(call_id, account_id)
        if call is None:
            raise NotFound(f"No call with id '{call_id}'")
        return call

    async def page(
        self, account_id: str, filters: ListFilters, after: tuple[datetime, str] | None, limit: int
    ) -> Page:
        return await self.store.page(account_id, filters, after, limit)

    async def hangup(self, account_id: str, call_id: str) -> Call:
        call = await self.get(account_id, call_id)
        if call.status.terminal:
            raise Conflict(
                f"The call has already ended with status '{call.status}'",
                code="CALL_ALREADY_ENDED",
                details={"status": str(call.status)},
            )
        ended = self._ended.setdefault(call_id, asyncio.Event())
        if await self.backend.hangup(call_id, HangupCause.API_HANGUP):
            try:
                async with asyncio.timeout(self.hangup_wait_seconds):
                    await ended.wait()
            except TimeoutError:
                log.warning("hangup did not finish in time", extra={"call_id": call_id})
        else:
            # No leg carries the call here (never dialled, or already gone): settle it directly.
            target = CallStatus.COMPLETED if call.status is CallStatus.IN_PROGRESS else CallStatus.CANCELLED
            settled = await self.store.transition(
                call_id, target, utcnow(), hangup_cause=HangupCause.API_HANGUP, hangup_side=HangupSide.LOCAL
            )
            if settled is not None:
                metrics.call_ended(target, call_id)
        self._ended.pop(call_id, None)
        return await self.get(account_id, call_id)

    # --- CallProgress: what the backend reports ------------------------------------------------

    async def ringing(self, call_id: str, sip_status: int | None = None, **facts: Any) -> None:
        await self._move(call_id, CallStatus.RINGING, facts)

    async def answered(self, call_id: str, **facts: Any) -> None:
        await self._move(call_id, CallStatus.IN_PROGRESS, facts)

    async def ended(self, call_id: str, outcome: CallOutcome, **facts: Any) -> None:
        await self._move(
            call_id,
            outcome.status,
            facts,
            hangup_cause=str(outcome.cause),
            hangup_side=str(outcome.side) if outcome.side else None,
            sip_status=outcome.sip_status,
            # A carrier's reason phrase may be broken UTF-8.
            sip_reason=clean_text(outcome.sip_reason) if outcome.sip_reason else None,
        )
        event = self._ended.get(call_id)
        if event is not None:
            event.set()

    async def update(self, call_id: str, **fields: Any) -> None:
        await self._retrying("update", lambda: self.store.update(call_id, **fields))

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """What the SIP side reports must reach the store: a busy store (no free connection,
        SQLite locked) is waited for, with backoff, up to store_retry_seconds."""
        deadline = asyncio.get_running_loop().time() + self.store_retry_seconds
        delay = 0.1
        while True:
            try:
                return await op()
            except (sa_exc.TimeoutError, sa_exc.OperationalError) as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                log.warning("call store busy; retrying", extra={"what": what, "error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _move(self, call_id: str, to: CallStatus, facts: dict[str, Any], **fields: Any) -> None:
        # Safe to repeat: the move is a conditional UPDATE, committed with its event or not at all.
        moved = await self._retrying(
            f"status {to}", lambda: self.store.transition(call_id, to, utcnow(), **facts, **fields)
        )
        if moved is None:
            log.info("status change ignored", extra={"call_id": call_id, "to": str(to)})
            if facts:  # the facts are still true
                await self.update(call_id, **facts)
        else:
            log.info(
                "call status",
                extra={
                    "call_id": call_id,
                    "status": str(to),
                    **{k: v for k, v in fields.items() if v is not None},
                },
            )
            if to.terminal:
                metrics.call_ended(to, call_id)
