"""CallRecorder: the one writer of call statuses. The backend reports what happens to its calls
here (`CallProgress`); a call no leg carries is settled here too.

Every move is a conditional UPDATE checked against the transition table
(`gateway.outcome.TRANSITIONS`) in the store, committed with its webhook event or not at all,
so a report may be repeated or arrive late without harm. What the SIP side reports must
reach the store: a busy store (no free connection, SQLite locked) is waited for, with
backoff, up to `store_retry_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from gateway.jsonutil import clean_text
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallOutcome, CallStatus
from gateway.store.calls import CallStore
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.calls")

T = TypeVar("T")


class CallRecorder:
    def __init__(self, store: CallStore, metrics: GatewayMetrics, *, store_retry_seconds: float = 120.0) -> None:
        self.store = store
        self.metrics = metrics
        self.store_retry_seconds = store_retry_seconds
        self._ended: dict[str, asyncio.Event] = {}

    # --- CallProgress ----------------------------------------------------------------------

    async def ringing(self, call_id: str, sip_status: int | None = None, **facts: Any) -> None:
        await self._move(call_id, CallStatus.RINGING, facts)

    async def answered(self, call_id: str, **facts: Any) -> None:
        await self._move(call_id, CallStatus.IN_PROGRESS, facts)

    async def ended(self, call_id: str, outcome: CallOutcome, **facts: Any) -> None:
        await self._move(call_id, outcome.status, facts, **_outcome_fields(outcome))
        event = self._ended.get(call_id)
        if event is not None:
            event.set()

    async def update(self, call_id: str, **fields: Any) -> None:
        await self._retrying("update", lambda: self.store.update(call_id, **fields))

    # --- for the service and the reconciler ------------------------------------------------

    async def wait_ended(self, call_id: str, start: Callable[[], Awaitable[bool]], wait_seconds: float) -> bool:
        """Run `start` (which asks for the call to end) and wait until its end is recorded, at
        most `wait_seconds`. False when `start` says nobody here carries the call."""
        ended = self._ended.setdefault(call_id, asyncio.Event())
        try:
            if not await start():
                return False
            try:
                async with asyncio.timeout(wait_seconds):
                    await ended.wait()
            except TimeoutError:
                log.warning("call did not end in time", extra={"call_id": call_id})
            return True
        finally:
            self._ended.pop(call_id, None)

    async def settle(self, call_id: str, outcome: CallOutcome, *, ended_at: datetime | None = None, **facts: Any) -> bool:
        """End a call that no leg of this process carries. False when it had ended already."""
        changes: dict[str, Any] = {**facts, **_outcome_fields(outcome)}
        if ended_at is not None:
            changes["ended_at"] = ended_at
        moved = await self._retrying(
            f"settle {outcome.status}", lambda: self.store.transition(call_id, outcome.status, utcnow(), **changes)
        )
        if moved is None:
            return False
        self.metrics.call_ended(outcome.status, call_id)
        log.info("call settled", extra={"call_id": call_id, "status": str(outcome.status), "hangup_cause": str(outcome.cause)})
        return True

    # --- internals -------------------------------------------------------------------------

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
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
            return
        log.info(
            "call status",
            extra={"call_id": call_id, "status": str(to), **{k: v for k, v in fields.items() if v is not None}},
        )
        if to.terminal:
            self.metrics.call_ended(to, call_id)


def _outcome_fields(outcome: CallOutcome) -> dict[str, Any]:
    return {
        "hangup_cause": str(outcome.cause),
        "hangup_side": str(outcome.side) if outcome.side else None,
        "sip_status": outcome.sip_status,
        # A carrier's reason phrase may be broken UTF-8.
        "sip_reason": clean_text(outcome.sip_reason) if outcome.sip_reason else None,
    }
