"""The user agent's API types: what it is given, what it says back, and what it supports.

``gateway.sip.useragent`` re-exports the API types and events, and the rest of the gateway
imports them from there; ``CallSettings`` and the constants are for the legs the user agent
drives (``OutboundCall``, ``LegRelease``). Values only, except that ``CallSettings`` also
writes our Via and finds a dialog's next hop.

* ``Address = tuple[str, int]``, ``Transport = Literal["udp", "tcp"]``.
* ``LocalMedia(address, rtp_port, codecs=("PCMU", "PCMA"), dtmf_payload_type=101, ptime=20)``.
* ``OutboundCallParams`` - see the field comments.
* ``CallOutcome`` (``gateway.outcome``): status, cause, side, sip_status, sip_reason.
* Events: ``Trying(sip_call_id)``, ``Ringing(status, reason, early_media)``,
  ``Answered(media, status)``, ``MediaUpdated(media)``, ``DtmfReceived(digit, duration_ms)``,
  ``Ended(outcome)``, ``Released()``, ``LegUpdated(snapshot)``; ``CallEvent(call_ref, event)``.
* ``Transmit(data, destination, transport)``; ``UaOutput = Transmit | CallEvent``.
* ``UaStats`` counters; ``UaUsageError`` for API misuse (raised by ``place_call``).
* ``CallSettings``: what a call needs to know about the user agent; ``via(transport)``,
  ``next_hop(dialog, destination, transport)``.
* What the user agent supports, as it says in Allow, Accept and Supported: ``ALLOW``,
  ``ACCEPT``, ``SUPPORTED``; ``KNOWN_UNSUPPORTED`` methods are answered 405, others 501.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.outcome import CallOutcome
from gateway.sip.dialog import Address, Dialog, Transport
from gateway.sip.digest import DigestCredentials
from gateway.sip.errors import SipError
from gateway.sip.message import new_branch
from gateway.sip.sdp import NegotiatedMedia
from gateway.sip.snapshot import LegSnapshot
from gateway.sip.timers import TimerConfig
from gateway.sip.uri import SipUri, format_host

__all__ = [
    "ACCEPT",
    "ALLOW",
    "KNOWN_UNSUPPORTED",
    "SUPPORTED",
    "Address",
    "Answered",
    "CallEvent",
    "CallEventBody",
    "CallOutcome",
    "CallSettings",
    "DtmfReceived",
    "Ended",
    "LegUpdated",
    "LocalMedia",
    "MediaUpdated",
    "OutboundCallParams",
    "Released",
    "Ringing",
    "Transmit",
    "Transport",
    "Trying",
    "UaOutput",
    "UaStats",
    "UaUsageError",
]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
SUPPORTED = "timer"
# Methods we know but do not serve: 405 with Allow. Anything else unknown: 501.
KNOWN_UNSUPPORTED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH", "PRACK"})


class UaUsageError(SipError, ValueError):
    """The user agent was asked for something it cannot do (duplicate call_ref, transport off...)."""


@dataclass(frozen=True)
class LocalMedia:
    address: str  # our RTP address, written in c= and o=
    rtp_port: int
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    dtmf_payload_type: int | None = 101
    ptime: int = 20


@dataclass(frozen=True)
class OutboundCallParams:
    call_ref: str  # the gateway's call id (call_...), the key for everything
    request_uri: SipUri  # sip:+14155552671@carrier.example.com:5060;transport=udp
    destination: Address  # next hop for the initial INVITE (the trunk, resolved IP)
    transport: Transport
    from_uri: SipUri  # sip:+12025551234@<local_host>
    to_uri: SipUri  # same user/host as request_uri, no params
    local_media: LocalMedia
    credentials: DigestCredentials | None
    ring_timeout: float  # seconds from start to CANCEL (no_answer)
    session_expires: int = 1800  # RFC 4028 interval we ask for; 0 disables
    min_se: int = 90
    max_auth_attempts: int = 2
    extra_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Trying:
    sip_call_id: str


@dataclass(frozen=True)
class Ringing:
    status: int
    reason: str
    early_media: NegotiatedMedia | None


@dataclass(frozen=True)
class Answered:
    media: NegotiatedMedia
    status: int


@dataclass(frozen=True)
class MediaUpdated:
    media: NegotiatedMedia


@dataclass(frozen=True)
class DtmfReceived:
    digit: str
    duration_ms: int | None


@dataclass(frozen=True)
class Ended:
    outcome: CallOutcome


@dataclass(frozen=True)
class Released:
    pass


@dataclass(frozen=True)
class LegUpdated:
    """What it now takes to end the call from another process (see ``gateway.sip.snapshot``)."""

    snapshot: LegSnapshot


CallEventBody = Trying | Ringing | Answered | MediaUpdated | DtmfReceived | Ended | Released | LegUpdated


@dataclass(frozen=True)
class CallEvent:
    call_ref: str
    event: CallEventBody


@dataclass(frozen=True)
class Transmit:
    data: bytes
    destination: Address
    transport: Transport


UaOutput = Transmit | CallEvent


@dataclass
class UaStats:
    received: int = 0  # datagrams / stream messages handed to receive()
    sent: int = 0  # Transmit outputs
    keepalives: int = 0  # CRLF-only data
    parse_errors: int = 0  # failed to parse (answered when a trunk sent it and it can be)
    bad_messages: int = 0  # parseable but unusable (answered with the error's status: see errors.py)
    dropped_untrusted: int = 0  # from untrusted sources: none of our calls (unparsed), or out of dialog
    dropped_responses: int = 0  # responses matching no client transaction
    dropped_requests: int = 0  # stray ACKs
    answered_481: int = 0
    answered_400: int = 0
    answered_invalid: int = 0  # requests that failed to parse, answered 400/505/513
    rejected_invites: int = 0  # inbound INVITEs refused with 403
    options_answered: int = 0
    calls_placed: int = 0
    internal_errors: int = 0  # a bug: an exception was contained


@dataclass(frozen=True)
class CallSettings:
    """What a call needs to know about the user agent (derived from ``UaConfig``)."""

    local_host: str
    udp_port: int | None
    tcp_port: int | None
    user_agent: str
    timers: TimerConfig

    def port(self, transport: Transport) -> int | None:
        return self.udp_port if transport == "udp" else self.tcp_port

    def via(self, transport: Transport) -> str:
        """The Via of a new request of ours: a new branch, and rport (RFC 3581)."""
        host = format_host(self.local_host)
        return f"SIP/2.0/{transport.upper()} {host}:{self.port(transport)};branch={new_branch()};rport"

    def next_hop(self, dialog: Dialog, destination: Address, transport: Transport) -> tuple[Address, Transport]:
        """Where a request within ``dialog`` goes (its route set or target, else ``destination``,
        where the INVITE went), on a transport we listen on."""
        hop, hop_transport = dialog.next_hop(transport, (destination, transport))
        if self.port(hop_transport) is None:
            hop_transport = transport
        return hop, hop_transport
