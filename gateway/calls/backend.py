"""The seam between call control and the legs that carry calls (SIP user agent, media, agent).

`CallService` owns call records and their statuses. A `CallBackend` places the call
and reports what happens through the `CallProgress` it is given; it never writes
statuses itself. That keeps the transition table in one place, whatever carries the call.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.calls.model import Call
from gateway.outcome import CallOutcome, HangupCause


class CallProgress(Protocol):
    """What a backend reports about a call it carries."""

    # `facts` are fields that are not a status (`sip_call_id`, `agent_summary`, `media_stats`...),
    # written in the same transaction as the status change (one write per change under load).

    async def ringing(self, call_id: str, sip_status: int | None = None, **facts: Any) -> None: ...

    async def answered(self, call_id: str, **facts: Any) -> None: ...

    async def ended(self, call_id: str, outcome: CallOutcome, **facts: Any) -> None: ...

    async def update(self, call_id: str, **fields: Any) -> None:
        """Facts on their own, without a status change."""
        ...


class CallBackend(Protocol):
    async def start(self, progress: CallProgress) -> None: ...

    async def stop(self) -> None: ...

    def admit(self, call: Call) -> None:
        """Hold a place for the call on its trunk, or raise `RateLimited` when the trunk can
        neither take nor queue another call. Synchronous, so concurrent requests are counted
        one by one; the place is taken by `dial` or given back by `withdraw`."""
        ...

    def withdraw(self, call: Call) -> None:
        """Give back the place `admit` held (the call could not be stored)."""
        ...

    async def dial(self, call: Call) -> None:
        """Start placing the call; returns once it is under way (or queued)."""
        ...

    async def release(self, call: Call) -> None:
        """End on the wire a call that a process now gone carried (BYE, or CANCEL while it
        rang), from what that process stored (`Call.sip_leg`). Returns when the far end
        answered or the request timed out; the caller settles the call."""
        ...

    async def hangup(self, call_id: str, cause: HangupCause) -> bool:
        """Ask for the call to end (BYE after answer, CANCEL before).

        Returns False when this backend does not carry the call, so the service can
        settle it itself. The outcome arrives through `CallProgress.ended`.
        """
        ...
