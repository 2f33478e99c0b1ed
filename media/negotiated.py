"""What offer/answer (RFC 3264) agreed for a call's audio: the value the control plane hands
the data plane. The SIP layer (``gateway.sip.sdp``) produces it; ``media.session`` applies it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MediaDirection", "NegotiatedMedia"]


class MediaDirection(StrEnum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (MediaDirection.SENDRECV, MediaDirection.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (MediaDirection.SENDRECV, MediaDirection.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> MediaDirection:
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        if receives:
            return cls.RECVONLY
        return cls.INACTIVE

    def reversed(self) -> MediaDirection:
        """The same stream as seen from the other end."""
        return MediaDirection.from_flags(self.receives, self.sends)

    def intersect(self, other: MediaDirection) -> MediaDirection:
        return MediaDirection.from_flags(self.sends and other.sends, self.receives and other.receives)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    rtcp_mux: bool
    codec: str
    payload_type: int
    local_payload_type: int
    clock_rate: int
    channels: int
    telephone_event_pt: int | None
    local_telephone_event_pt: int | None
    ptime: int
    maxptime: int | None
    direction: MediaDirection
    remote_hold: bool
    rejected: bool
    media_index: int

    @property
    def can_send(self) -> bool:
        return not self.rejected and self.direction.sends

    @property
    def can_receive(self) -> bool:
        return not self.rejected and self.direction.receives
