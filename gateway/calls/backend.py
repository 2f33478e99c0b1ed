"""The seams of call control: what carries calls (`CallBackend`), where it reports (`CallProgress`),
and the timers it runs on (`Timers`).

`CallService` takes API requests; a `CallBackend` places the calls and tells a `CallProgress`
(the `CallRecorder`) what happens; only the recorder writes statuses, so the transition
table is enforced in one place, whatever carries the call. Each is handed to the next
through its constructor: recorder, then backend, then service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from gateway.outcome import CallOutcome, HangupCause
from gateway.store.records import Call


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
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def dial(self, call: Call) -> None:
        """Start placing a stored call; returns once it is queued for its trunk."""
        ...

    async def hangup(self, call_id: str, cause: HangupCause) -> bool:
        """Ask for the call to end (BYE after answer, CANCEL before, nothing if not yet dialled).

        False when this backend does not carry the call. Otherwise the outcome arrives
        through `CallProgress.ended`."""
        ...

    async def release(self, call: Call) -> None:
        """End on the wire a call that a process now gone carried (BYE, or CANCEL while it
        rang), from what that process stored (`Call.sip_leg`). Returns when the far end
        answered or the request timed out; the caller settles the call."""
        ...

    def live_calls(self) -> int:
        """Calls this backend carries that have not ended yet."""
        ...


class Peers(Protocol):
    """The other nodes on the database, for a call this node does not carry."""

    async def hangup(self, call: Call, cause: HangupCause, wait_seconds: float) -> bool:
        """Have the node that carries the call end it (or, if that node is lost, end and settle
        it here) and wait up to `wait_seconds` for its final status. False when no other node
        carries it."""
        ...


class NoPeers:
    """One node alone."""

    async def hangup(self, call: Call, cause: HangupCause, wait_seconds: float) -> bool:
        return False


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """Monotonic time and one-shot callbacks: the event loop in production, a clock the test
    moves by hand in component tests."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable: ...


class LoopTimers:
    """`Timers` on the running asyncio loop."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_at(when, callback)
