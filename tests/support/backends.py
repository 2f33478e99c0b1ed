"""A call backend the API tests drive by hand: it holds calls until told what happened.

It stands in only for the SIP/media legs in tests of the control plane; the SIP user agent
itself is tested against SIPp, baresip and Kamailio.
"""

from __future__ import annotations

from gateway.calls.backend import CallProgress
from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.store.records import Call


class ScriptedBackend:
    def __init__(self, progress: CallProgress) -> None:
        self.progress = progress
        self.dialed: list[Call] = []
        self.hangups: list[tuple[str, HangupCause]] = []
        self.answered: set[str] = set()
        self.released: list[str] = []

    async def start(self) -> None:
        return None

    def live_calls(self) -> int:
        return 0

    async def stop(self) -> None:
        return None

    async def release(self, call: Call) -> None:
        self.released.append(call.id)

    async def dial(self, call: Call) -> None:
        self.dialed.append(call)

    async def ring(self, call_id: str) -> None:
        assert self.progress is not None
        await self.progress.ringing(call_id, 180)

    async def answer(self, call_id: str) -> None:
        assert self.progress is not None
        self.answered.add(call_id)
        await self.progress.answered(call_id)

    async def end(self, call_id: str, outcome: CallOutcome) -> None:
        assert self.progress is not None
        await self.progress.ended(call_id, outcome)

    async def hangup(self, call_id: str, cause: HangupCause) -> bool:
        assert self.progress is not None
        self.hangups.append((call_id, cause))
        status = CallStatus.COMPLETED if call_id in self.answered else CallStatus.CANCELLED
        await self.progress.ended(call_id, CallOutcome(status, cause, HangupSide.LOCAL, 200 if call_id in self.answered else 487))
        return True
