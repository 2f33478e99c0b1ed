"""The state tables of an outbound call: its phases, the moves between them, and its timers.

Phases
------
::

    CALLING     INVITE sent, no provisional response yet
    EARLY       a provisional response arrived (a CANCEL may now be sent)
    CANCELLING  CANCEL sent; waiting for the INVITE's final response (at most 64*T1)
    CONFIRMED   2xx received and ACKed, media agreed
    CLOSING     our BYE is pending; Ended follows when it completes or times out
    ENDED       Ended emitted; transactions linger, then Released

``PHASE_TRANSITIONS`` lists every move, as h11's ``_state.py`` does: a pair that is not in
it is a bug, and ``transition`` refuses it with ``CallPhaseError``. Only ``OutboundCall``
changes its phase, through that function.

Timers
------
``CallTimer`` names what a call waits for besides its transactions; the call keeps one
deadline per timer and fires the due ones in deadline order.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["PHASE_TRANSITIONS", "CallPhase", "CallPhaseError", "CallTimer", "transition"]


class CallPhase(enum.Enum):
    CALLING = "calling"
    EARLY = "early"
    CANCELLING = "cancelling"
    CONFIRMED = "confirmed"
    CLOSING = "closing"
    ENDED = "ended"


P = CallPhase
PHASE_TRANSITIONS: Final[dict[CallPhase, frozenset[CallPhase]]] = {
    # A 2xx may come before any 1xx; a 2xx whose SDP we cannot use, or that crossed a
    # hangup, is ACKed and ended with a BYE at once (CLOSING without CONFIRMED).
    P.CALLING: frozenset({P.EARLY, P.CONFIRMED, P.CLOSING, P.ENDED}),
    P.EARLY: frozenset({P.CANCELLING, P.CONFIRMED, P.CLOSING, P.ENDED}),
    # The INVITE's final response decides: a 2xx that crossed the CANCEL is ended with a BYE.
    P.CANCELLING: frozenset({P.CLOSING, P.ENDED}),
    P.CONFIRMED: frozenset({P.CLOSING, P.ENDED}),
    P.CLOSING: frozenset({P.ENDED}),
    P.ENDED: frozenset(),
}


class CallPhaseError(RuntimeError):
    """A move the phase table does not allow: a bug in the call, not something a peer did
    (so not a ``SipError``; the user agent counts it as an internal error)."""


def transition(current: CallPhase, new: CallPhase) -> CallPhase:
    """``new``, if the table allows moving there from ``current``."""
    if new not in PHASE_TRANSITIONS[current]:
        raise CallPhaseError(f"an outbound call cannot go from {current.name} to {new.name}")
    return new


class CallTimer(enum.Enum):
    RING = "ring timeout"
    CANCEL_WAIT = "final response after CANCEL"
    SESSION_REFRESH = "send a session refresh"
    SESSION_EXPIRY = "session expires"
    REFRESH_WAIT = "final response to our refresh"
    RETRANSMIT_2XX = "retransmit our 2xx to a re-INVITE"
    ACK_WAIT = "ACK for our 2xx to a re-INVITE"
