"""The one rule for how a call ends when the gateway ends it, and the leg's state table."""

from __future__ import annotations

import pytest

from gateway.calls.ending import FAILURES, end_by_us, settled
from gateway.calls.leg import TRANSITIONS, LegState
from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide


@pytest.mark.parametrize(
    ("cause", "answered", "status"),
    [
        (HangupCause.API_HANGUP, False, CallStatus.CANCELLED),
        (HangupCause.API_HANGUP, True, CallStatus.COMPLETED),
        (HangupCause.AGENT_HANGUP, True, CallStatus.COMPLETED),
        (HangupCause.MAX_DURATION, True, CallStatus.COMPLETED),
        (HangupCause.GATEWAY_SHUTDOWN, False, CallStatus.CANCELLED),
        (HangupCause.QUEUE_TIMEOUT, False, CallStatus.FAILED),
        (HangupCause.MEDIA_UNAVAILABLE, False, CallStatus.FAILED),
        (HangupCause.REJECTED, False, CallStatus.FAILED),
        (HangupCause.GATEWAY_RESTART, True, CallStatus.FAILED),
        (HangupCause.GATEWAY_RESTART, False, CallStatus.FAILED),
    ],
)
def test_end_by_us(cause: HangupCause, answered: bool, status: CallStatus) -> None:
    assert end_by_us(cause, answered=answered) == CallOutcome(status, cause, HangupSide.LOCAL)


def test_a_normal_close_for_a_failure_of_ours_is_failed() -> None:
    closed = CallOutcome(CallStatus.COMPLETED, HangupCause.AGENT_UNAVAILABLE, HangupSide.LOCAL, 200, "OK")
    assert settled(closed) == CallOutcome(CallStatus.FAILED, HangupCause.AGENT_UNAVAILABLE, HangupSide.LOCAL, 200, "OK")
    normal = CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE)
    assert settled(normal) is normal
    busy = CallOutcome(CallStatus.BUSY, HangupCause.BUSY, HangupSide.REMOTE, 486, "Busy Here")
    assert settled(busy) is busy
    assert HangupCause.API_HANGUP not in FAILURES


def test_every_live_state_can_end_and_the_end_is_one_way() -> None:
    live = [s for s in LegState if s not in (LegState.ENDING, LegState.ENDED, LegState.RELEASED)]
    assert all(LegState.ENDING in TRANSITIONS[s] for s in live)
    assert TRANSITIONS[LegState.ENDING] == {LegState.ENDED}
    assert TRANSITIONS[LegState.ENDED] == {LegState.RELEASED}
    assert TRANSITIONS[LegState.RELEASED] == frozenset()
    assert set(TRANSITIONS) == set(LegState)
    # No way back to an earlier phase of the call.
    order = list(LegState)
    for source, targets in TRANSITIONS.items():
        for target in targets:
            assert order.index(target) > order.index(source), (source, target)
