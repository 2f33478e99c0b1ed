"""How calls end, as every layer names it: the seed's statuses, the allowed transitions, hang-up
causes and sides, and `CallOutcome`, which the SIP user agent emits and the call store records."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CallStatus(StrEnum):
    INITIATING = "initiating"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


S = CallStatus
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.BUSY, S.NO_ANSWER, S.CANCELLED})
ACTIVE = frozenset(CallStatus) - TERMINAL

# Every allowed move. Anything not listed is refused; terminal states have no way out.
TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    S.INITIATING: frozenset({S.RINGING, S.IN_PROGRESS, S.FAILED, S.BUSY, S.NO_ANSWER, S.CANCELLED}),
    S.RINGING: frozenset({S.IN_PROGRESS, S.FAILED, S.BUSY, S.NO_ANSWER, S.CANCELLED}),
    # An answered call ends normally, or fails when what it needs after answer is missing
    # (for example its agent cannot be reached).
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.BUSY: frozenset(),
    S.NO_ANSWER: frozenset(),
    S.CANCELLED: frozenset(),
}

# The webhook event each status is announced with.
EVENT_TYPE: dict[CallStatus, str] = {
    S.INITIATING: "call.initiated",
    S.RINGING: "call.ringing",
    S.IN_PROGRESS: "call.answered",
    S.COMPLETED: "call.completed",
    S.FAILED: "call.failed",
    S.BUSY: "call.failed",
    S.NO_ANSWER: "call.failed",
    S.CANCELLED: "call.failed",
}


def sources_of(target: CallStatus) -> frozenset[CallStatus]:
    """The statuses from which `target` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


class HangupCause(StrEnum):
    """Why a call ended; stored as `hangup_cause`."""

    NORMAL_CLEARING = "normal_clearing"  # a party hung up after answer
    API_HANGUP = "api_hangup"
    REMOTE_HANGUP = "remote_hangup"
    AGENT_HANGUP = "agent_hangup"
    MAX_DURATION = "max_duration"
    RING_TIMEOUT = "ring_timeout"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"  # a final SIP failure that is neither busy nor no answer
    AUTH_FAILED = "auth_failed"
    TIMEOUT = "timeout"  # Timer B / F: the trunk never answered
    TRANSPORT_ERROR = "transport_error"
    CODEC_MISMATCH = "codec_mismatch"
    MEDIA_TIMEOUT = "media_timeout"
    MEDIA_UNAVAILABLE = "media_unavailable"  # e.g. no free RTP port
    QUEUE_TIMEOUT = "queue_timeout"  # waited longer than the trunk's queue_timeout_seconds
    SESSION_EXPIRED = "session_expired"
    AGENT_UNAVAILABLE = "agent_unavailable"
    GATEWAY_RESTART = "gateway_restart"  # the node that carried it came back and settled it
    NODE_LOST = "node_lost"  # the node that carried it was lost; a peer settled it
    GATEWAY_SHUTDOWN = "gateway_shutdown"


class HangupSide(StrEnum):
    LOCAL = "local"  # the gateway (API, agent, limits) ended the call
    REMOTE = "remote"  # the called party or the network ended it


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call ended: the final status and what explains it."""

    status: CallStatus
    cause: HangupCause
    side: HangupSide | None = None
    sip_status: int | None = None
    sip_reason: str | None = None
