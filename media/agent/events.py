"""Typed frames exchanged between the gateway and an AI voice agent.

Both wire formats (orbit-voice v1 and Twilio Media Streams) encode and decode
these same events, so the bridge is written once against this taxonomy.
Audio is always PCM16 little-endian mono at the codec's sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

Direction = Literal["inbound", "outbound"]
MarkStatus = Literal["played", "cleared"]
StopReason = Literal["api_hangup", "remote_hangup", "max_duration", "error"]
ViolationKind = Literal[
    "malformed_json",
    "unknown_type",
    "missing_field",
    "bad_value",
    "odd_sized_frame",
    "oversized_frame",
    "binary_not_allowed",
    "text_too_large",
]

DIRECTIONS: Final[frozenset[str]] = frozenset({"inbound", "outbound"})
MARK_STATUSES: Final[frozenset[str]] = frozenset({"played", "cleared"})
STOP_REASONS: Final[frozenset[str]] = frozenset({"api_hangup", "remote_hangup", "max_duration", "error"})
VIOLATION_KINDS: Final[tuple[ViolationKind, ...]] = (
    "malformed_json",
    "unknown_type",
    "missing_field",
    "bad_value",
    "odd_sized_frame",
    "oversized_frame",
    "binary_not_allowed",
    "text_too_large",
)
# RFC 4733 events 0-15.
DTMF_DIGITS: Final[frozenset[str]] = frozenset("0123456789*#ABCD")


# --- gateway -> agent ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """First message of every agent connection (and of every reconnection)."""

    call_id: str
    from_: str
    to: str
    direction: Direction
    metadata: dict[str, Any]
    account_id: str
    sample_rate: int
    reconnect: bool = False
    stream_id: str | None = None


@dataclass(frozen=True, slots=True)
class Audio:
    """20 ms of caller audio, PCM16 LE mono at the agent's rate."""

    pcm: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A digit the caller pressed (received as RFC 4733 or SIP INFO)."""

    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class MarkDone:
    """The agent's mark was reached in playout, or dropped by a clear."""

    name: str
    status: MarkStatus


@dataclass(frozen=True, slots=True)
class Cleared:
    """Report after a Clear: how much of the buffered agent audio had played."""

    played_ms: int
    dropped_ms: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Last message: the call (or the stream) is over."""

    reason: StopReason


GatewayEvent = Start | Audio | Dtmf | MarkDone | Cleared | Stop


# --- agent -> gateway ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """Agent speech, PCM16 LE mono at the agent's rate; any whole number of samples."""

    pcm: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Mark:
    """Placed after the audio queued so far; reported back as MarkDone."""

    name: str


@dataclass(frozen=True, slots=True)
class Clear:
    """Barge-in: drop all queued agent audio."""


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call, optionally after the queued audio has played."""

    after_playout: bool = True


@dataclass(frozen=True, slots=True)
class SendDtmf:
    """Send digits to the far end as RFC 4733 events."""

    digits: str


@dataclass(frozen=True, slots=True)
class Summary:
    """Free-form JSON object the agent attaches to the call record."""

    data: dict[str, Any]


AgentEvent = AgentAudio | Mark | Clear | Hangup | SendDtmf | Summary


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """Returned instead of raising when the agent sends something invalid."""

    kind: ViolationKind
    detail: str


class AgentCodec(Protocol):
    """What the bridge needs from a wire format."""

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM carried by Audio / AgentAudio for this codec."""
        ...

    @property
    def subprotocol(self) -> str | None:
        """Sec-WebSocket-Protocol token to offer, if any."""
        ...

    def opening_frames(self) -> list[str | bytes]:
        """Frames to send right after the websocket opens, before Start is encoded."""
        ...

    def encode(self, event: GatewayEvent) -> str | bytes | None:
        """One frame for the event, or None when the format has no form for it."""
        ...

    def decode(self, frame: str | bytes) -> AgentEvent | ProtocolViolation:
        """Never raises on agent input."""
        ...
