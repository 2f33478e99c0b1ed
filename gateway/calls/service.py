"""CallService: what the API asks of calls: place one, read them, hang one up.

Statuses are written by the `CallRecorder` only (from what the backend reports, or when it
settles a call no leg here carries); how a call ends when we end it is `gateway.calls.ending`."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.calls.backend import CallBackend, NoPeers, Peers
from gateway.calls.ending import end_by_us
from gateway.calls.progress import CallRecorder
from gateway.config import AccountConfig, AgentConfig, TrunkConfig, route
from gateway.errors import Conflict, NotFound, RateLimited, ValidationFailed
from gateway.ids import new_call_id
from gateway.logs import call_id_var
from gateway.metrics import GatewayMetrics
from gateway.numbers import InvalidNumber, parse_e164
from gateway.outcome import CallStatus, HangupCause
from gateway.store.calls import CallStore, TrunkFull
from gateway.store.records import Call, ListFilters, Page
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.calls")


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
    def __init__(
        self,
        store: CallStore,
        backend: CallBackend,
        recorder: CallRecorder,
        *,
        agents: Sequence[AgentConfig],
        trunks: Sequence[TrunkConfig],
        node_id: str,
        metrics: GatewayMetrics,
        peers: Peers | None = None,
        hangup_wait_seconds: float = 35.0,
    ) -> None:
        self.store = store
        self.backend = backend
        self.recorder = recorder
        self._agents = {a.id for a in agents}
        self._trunks = list(trunks)
        self.node_id = node_id
        self._metrics = metrics
        self._peers: Peers = peers or NoPeers()
        self.hangup_wait_seconds = hangup_wait_seconds

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
        if req.agent_id is not None and req.agent_id not in self._agents:
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
        trunk = route(self._trunks, req.to)
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
        try:
            await self.store.insert(call, trunk_capacity=trunk.max_concurrent + trunk.queue_size)
        except TrunkFull as exc:
            # Carried and queued calls fill the trunk: the queue drains at calls_per_second.
            beyond = exc.live - trunk.max_concurrent + 1
            raise RateLimited(
                f"Trunk '{trunk.id}' is at its call limit; try again shortly",
                retry_after=max(1, math.ceil(beyond / trunk.calls_per_second)),
                limit=trunk.max_concurrent,
                window="concurrent",
            ) from None
        self._metrics.call_started(call.id)
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
        carried = await self.recorder.wait_ended(
            call_id, lambda: self.backend.hangup(call_id, HangupCause.API_HANGUP), self.hangup_wait_seconds
        )
        if not carried and call.node_id not in (None, self.node_id):
            # Another node carries it: that node ends it (or, if it is lost, this one does).
            carried = await self._peers.hangup(call, HangupCause.API_HANGUP, self.hangup_wait_seconds)
        if not carried:
            # No leg carries the call anywhere (never dialled, or already gone): settle it directly.
            answered = call.status is CallStatus.IN_PROGRESS
            await self.recorder.settle(call_id, end_by_us(HangupCause.API_HANGUP, answered=answered))
        return await self.get(account_id, call_id)
