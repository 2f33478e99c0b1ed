"""How a call ends when this side ends it: the one rule every place that settles a call uses.

The SIP user agent reports how the far end or the network ended a call (`CallOutcome` from
`gateway.sip`). When the gateway itself ends a call, the status follows from the cause and
from whether the call was answered:

    a cause that is a failure of ours (no trunk slot in time, no RTP port, the call
    could not be placed, its agent is gone, its node died)     -> failed
    any other local cause (API hangup, agent hangup, max_duration, shutdown):
        answered                                               -> completed
        not answered (queued, dialling, ringing)               -> cancelled
"""

from __future__ import annotations

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide

__all__ = ["FAILURES", "end_by_us", "settled"]

FAILURES = frozenset(
    {
        HangupCause.QUEUE_TIMEOUT,
        HangupCause.MEDIA_UNAVAILABLE,
        HangupCause.REJECTED,
        HangupCause.AGENT_UNAVAILABLE,
        HangupCause.GATEWAY_RESTART,
        HangupCause.NODE_LOST,
    }
)


def end_by_us(cause: HangupCause, *, answered: bool) -> CallOutcome:
    """The outcome of a call the gateway ends with no SIP answer to go by."""
    if cause in FAILURES:
        status = CallStatus.FAILED
    elif answered:
        status = CallStatus.COMPLETED
    else:
        status = CallStatus.CANCELLED
    return CallOutcome(status, cause, HangupSide.LOCAL)


def settled(outcome: CallOutcome) -> CallOutcome:
    """What the user agent reported, with the rule applied: a dialog we closed normally
    (BYE answered) for a cause that is a failure of ours ends the call failed."""
    if outcome.status is CallStatus.COMPLETED and outcome.cause in FAILURES:
        return CallOutcome(CallStatus.FAILED, outcome.cause, outcome.side, outcome.sip_status, outcome.sip_reason)
    return outcome
