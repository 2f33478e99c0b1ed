"""One outbound call: the INVITE, its dialog, and everything said within it (sans-I/O).

``SipUserAgent`` (``gateway.sip.useragent``) owns the calls and routes bytes to them; this
module holds the data types of the user agent's API and the per-call state machine
``OutboundCall``. The shell never uses ``OutboundCall`` directly.

Data types (all re-exported by ``gateway.sip.useragent``)
----------------------------------------------------------
* ``Address = tuple[str, int]``, ``Transport = Literal["udp", "tcp"]``.
* ``LocalMedia(address, rtp_port, codecs=("PCMU", "PCMA"), dtmf_payload_type=101, ptime=20)``.
* ``OutboundCallParams`` - see the field comments.
* ``CallOutcome`` (``gateway.outcome``): status, cause, side, sip_status, sip_reason.
* Events: ``Trying(sip_call_id)``, ``Ringing(status, reason, early_media)``,
  ``Answered(media, status)``, ``MediaUpdated(media)``, ``DtmfReceived(digit, duration_ms)``,
  ``Ended(outcome)``, ``Released()``; ``CallEvent(call_ref, event)``.
* ``Transmit(data, destination, transport)``; ``UaOutput = Transmit | CallEvent``.
* ``UaStats`` counters; ``UaUsageError`` for API misuse (raised by ``place_call``).

Call phases
-----------
::

    CALLING     INVITE sent, no provisional response yet
    EARLY       a provisional response arrived (a CANCEL may now be sent)
    CANCELLING  CANCEL sent; waiting for the INVITE's final response (at most 64*T1)
    CONFIRMED   2xx received and ACKed, media agreed
    CLOSING     our BYE is pending; Ended follows when it completes or times out
    ENDED       Ended emitted; transactions linger, then Released

INVITE responses (the current INVITE only)::

    1xx          CALLING -> EARLY; Ringing for 101-199 (deduplicated), early media from
                 SDP; a CANCEL wished for earlier goes out now
    2xx          ACK (per To tag, re-sent for each retransmission). First 2xx: dialog
                 confirmed -> Answered; if a hangup/ring timeout is pending, or the SDP
                 has no usable audio -> BYE (CLOSING). Later 2xx with another To tag
                 (forking) -> ACK + BYE of that dialog only.
    401/407      digest retry (new CSeq/branch) while attempts remain, else AUTH_FAILED
    422          one retry with the Min-SE of the 422
    other final  outcome from _FINAL_OUTCOMES (after a CANCEL: the cancel outcome)
    Timer B      TIMEOUT (408); transport error -> TRANSPORT_ERROR (503)

Choices where RFC 3261 leaves room
----------------------------------
* A hangup (or ring timeout) before any provisional response waits for one before
  sending the CANCEL (9.1). If a final response comes first it decides the outcome
  (except 401/407/422 and 487, which end the call with the cancel outcome, no retry);
  if Timer B fires first the outcome is the cancel outcome (the caller's wish ended
  the call), with no SIP status.
* After a CANCEL, any non-2xx final gives the cancel outcome with that SIP status; no
  final within 64*T1 gives the cancel outcome without SIP status and the INVITE
  transaction is abandoned.
* A 2xx without SDP uses the SDP of an earlier 1xx on the same dialog, if any.
* Every local BYE reports Ended when its transaction completes (any final response,
  Timer F or a transport error); a 401/407 to our BYE is retried with credentials.
* Session refresh (RFC 4028) answered by 481/408 or timed out: the dialog is gone,
  Ended(completed, REMOTE_HANGUP, REMOTE, 481/408) without BYE. Any other final
  response proves the far end alive: the session timer restarts. A transport error
  leaves the expiry running.
* A refresh re-INVITE that got a 1xx but no final within 64*T1 (a 1xx stops Timer B)
  is CANCELled; at Ended, INVITE transactions stuck like that are abandoned so the
  call can still be Released.
* A 2xx we sent to a re-INVITE that never gets its ACK (64*T1): BYE,
  Ended(completed, TIMEOUT, LOCAL). An ACK that should carry the answer to our offer
  but has none usable: BYE, Ended(failed, CODEC_MISMATCH, LOCAL, 488).
* MediaUpdated is emitted only when the negotiated media differ from the current ones
  (an identical re-INVITE is a refresh, not news).
* Every request of the far end gets a final response (500 if handling failed), since
  an unanswered server transaction would keep the call from being Released.
* In-dialog requests are accepted from any source (the dialog's Call-ID and tags are
  the credential); early dialogs (at most MAX_EARLY_DIALOGS) take OPTIONS and INFO only.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.sip.dialog import Address, Dialog, DialogError, Transport
from gateway.sip.digest import DigestCredentials, DigestSession
from gateway.sip.digest_challenge import DigestError
from gateway.sip.dtmf_info import parse_dtmf_info
from gateway.sip.errors import SipError, SipHeaderError, answer_status
from gateway.sip.headers import Headers, NameAddr, canonical_name, parse_header_params, split_list
from gateway.sip.message import (
    SipMessage,
    SipRequest,
    SipResponse,
    make_cancel,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    reason_phrase,
)
from gateway.sip.offer_answer import SdpNegotiationError, answer_offer, build_offer, negotiate_answer
from gateway.sip.sdp import NegotiatedMedia, SdpError, SdpParseError, SessionDescription
from gateway.sip.snapshot import LegSnapshot
from gateway.sip.timers import TimerConfig
from gateway.sip.transaction import (
    ClientKey,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    ServerKey,
    Terminated,
    Timeout,
    TransactionState,
    TransportFailure,
    cancel_target_key,
    server_key_for_request,
    transaction_key_for_response,
)
from gateway.sip.uri import Params, SipUri, format_host

__all__ = [
    "ACCEPT",
    "ALLOW",
    "Address",
    "Answered",
    "CallEvent",
    "CallEventBody",
    "CallOutcome",
    "CallPhase",
    "CallSettings",
    "DtmfReceived",
    "Ended",
    "LegUpdated",
    "LocalMedia",
    "MediaUpdated",
    "OutboundCall",
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
SDP = "application/sdp"
CONTACT_USER = "gw"
# Methods we know but do not serve: 405 with Allow. Anything else unknown: 501.
KNOWN_UNSUPPORTED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH", "PRACK"})
# Headers the user agent writes itself; extra_headers may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "max-forwards",
        "contact",
        "content-length",
        "content-type",
        "route",
    }
    | {"authorization", "proxy-authorization", "session-expires", "min-se"}
)

# Distinct To tags in provisional responses we keep early dialogs for (forking fan-out).
MAX_EARLY_DIALOGS = 16


# --------------------------------------------------------------------------- API types


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
    bad_messages: int = 0  # parseable but unusable (a 400 went back if trusted)
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


# --------------------------------------------------------------------------- internals


class CallPhase(enum.Enum):
    CALLING = "calling"
    EARLY = "early"
    CANCELLING = "cancelling"
    CONFIRMED = "confirmed"
    CLOSING = "closing"
    ENDED = "ended"


class _Purpose(enum.Enum):
    INVITE = "initial INVITE"
    CANCEL = "CANCEL"
    BYE = "BYE of the call"
    FORK_BYE = "BYE of an extra forked dialog"
    REFRESH = "session refresh re-INVITE"


class _Timer(enum.Enum):
    RING = "ring timeout"
    CANCEL_WAIT = "final response after CANCEL"
    SESSION_REFRESH = "send a session refresh"
    SESSION_EXPIRY = "session expires"
    REFRESH_WAIT = "final response to our refresh"
    RETRANSMIT_2XX = "retransmit our 2xx to a re-INVITE"
    ACK_WAIT = "ACK for our 2xx to a re-INVITE"


# What a final failure to the initial INVITE means; anything else is failed/REJECTED.
_FINAL_OUTCOMES: dict[int, tuple[CallStatus, HangupCause]] = {
    486: (CallStatus.BUSY, HangupCause.BUSY),
    600: (CallStatus.BUSY, HangupCause.BUSY),
    408: (CallStatus.NO_ANSWER, HangupCause.NO_ANSWER),
    480: (CallStatus.NO_ANSWER, HangupCause.NO_ANSWER),
    401: (CallStatus.FAILED, HangupCause.AUTH_FAILED),
    407: (CallStatus.FAILED, HangupCause.AUTH_FAILED),
    488: (CallStatus.FAILED, HangupCause.CODEC_MISMATCH),
    606: (CallStatus.FAILED, HangupCause.CODEC_MISMATCH),
}


@dataclass(frozen=True)
class _Intent:
    """Why we want to stop ringing: the outcome to report once the INVITE is over."""

    result: CallStatus
    cause: HangupCause


@dataclass(eq=False)
class _ClientEntry:
    tx: InviteClientTransaction | NonInviteClientTransaction
    purpose: _Purpose
    destination: Address
    transport: Transport
    auth_retries: int = 0
    retried_422: bool = False
    provisional: bool = False


@dataclass(eq=False)
class _ServerEntry:
    tx: InviteServerTransaction | NonInviteServerTransaction
    source: Address
    transport: Transport


@dataclass(eq=False)
class _PendingAck:
    """Our 2xx to their re-INVITE, retransmitted until the ACK arrives (13.3.1.4)."""

    cseq: int
    data: bytes
    destination: Address
    transport: Transport
    interval: float
    offer: SessionDescription | None  # our offer in the 2xx: the ACK must answer it


@dataclass
class _SessionTimer:
    interval: int
    we_refresh: bool


def _sdp_body(message: SipMessage) -> bytes | None:
    if message.content_type == SDP and message.body.strip():
        return message.body
    return None


def _delta_seconds(text: str, header: str) -> tuple[int, Params]:
    value, _, rest = text.partition(";")
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise SipHeaderError(f"invalid {header} value {text!r}", header=header)
    params = parse_header_params(";" + rest, header) if rest else Params()
    return int(value), params


def _session_expires(message: SipMessage) -> tuple[int, str | None] | None:
    """(interval, refresher) of a Session-Expires header; raises SipHeaderError if malformed."""
    value = message.header("Session-Expires")
    if value is None:
        return None
    interval, params = _delta_seconds(value, "Session-Expires")
    if interval <= 0:
        raise SipHeaderError("Session-Expires must be positive", header="Session-Expires")
    refresher = params.get("refresher")
    return interval, refresher.lower() if refresher else None


def _min_se(message: SipMessage) -> int | None:
    value = message.header("Min-SE")
    if value is None:
        return None
    try:
        seconds, _ = _delta_seconds(value, "Min-SE")
    except SipHeaderError:
        return None
    return seconds or None


def _option_tags(message: SipMessage, header: str) -> set[str]:
    tags: set[str] = set()
    for value in message.headers.get_all(header):
        tags.update(t.strip().lower() for t in split_list(value) if t.strip())
    return tags


def _check_extra_headers(headers: Iterable[tuple[str, str]]) -> None:
    scratch = Headers()
    for name, value in headers:
        if canonical_name(name).lower() in _RESERVED_HEADERS:
            raise UaUsageError(f"extra header {name!r} is written by the user agent itself")
        try:
            scratch.add(name, value)
        except SipHeaderError as exc:
            raise UaUsageError(f"invalid extra header {name!r}: {exc.reason}") from exc


# --------------------------------------------------------------------------- the call


class OutboundCall:
    """State of one outbound call; driven by ``SipUserAgent``."""

    def __init__(
        self,
        params: OutboundCallParams,
        settings: CallSettings,
        stats: UaStats,
        outputs: list[UaOutput],
    ) -> None:
        self.params = params
        self.call_ref = params.call_ref
        self._settings = settings
        self._stats = stats
        self._outputs = outputs
        self._t1 = settings.timers.t1
        self._t2 = settings.timers.t2
        port = settings.port(params.transport)
        if port is None:
            raise UaUsageError(f"transport {params.transport!r} is not enabled")
        if not params.request_uri.is_sip or not params.to_uri.is_sip or not params.from_uri.is_sip:
            raise UaUsageError("request_uri, from_uri and to_uri must be SIP URIs")
        if params.max_auth_attempts < 0 or params.min_se <= 0 or params.session_expires < 0:
            raise UaUsageError("max_auth_attempts, min_se and session_expires out of range")
        _check_extra_headers(params.extra_headers)
        host = format_host(settings.local_host)
        self._contact = f"<sip:{CONTACT_USER}@{host}:{port};transport={params.transport}>"

        self.sip_call_id = new_call_id(settings.local_host)
        self._local_from = NameAddr(uri=params.from_uri.copy(), params=Params([("tag", new_tag())]))
        self._cseq = 1
        self._min_se = params.min_se
        self._session_expires = max(params.session_expires, params.min_se) if params.session_expires else 0

        media = params.local_media
        self._sdp_session_id = secrets.randbelow(2**31 - 2) + 1
        self._sdp_version = self._sdp_session_id
        try:
            self._offer = build_offer(
                self._sdp_session_id,
                self._sdp_version,
                media.address,
                media.rtp_port,
                media.codecs,
                media.dtmf_payload_type,
                media.ptime,
            )
        except SdpError as exc:
            raise UaUsageError(f"local media cannot be offered: {exc}") from exc
        # The last SDP we sent; a session refresh repeats it unchanged.
        self._local_sdp = self._offer
        self._local_sdp_bytes = self._offer.to_bytes()

        self._digest = (
            DigestSession(params.credentials, max_attempts=max(1, params.max_auth_attempts))
            if params.credentials is not None
            else None
        )

        self.phase = CallPhase.CALLING
        self.media: NegotiatedMedia | None = None
        self.released = False
        self._outcome: CallOutcome | None = None
        self._closing: CallOutcome | None = None
        self._intent: _Intent | None = None
        self._cancel_sent = False
        self._invite: _ClientEntry | None = None
        self._dialog: Dialog | None = None
        self._early: dict[str, Dialog] = {}
        self._early_sdp: dict[str, bytes] = {}
        self._last_ringing: tuple[int, str | None, bytes] | None = None
        self._acks: dict[tuple[str, int], tuple[bytes, Address, Transport]] = {}
        self._session: _SessionTimer | None = None
        self._refresh: _ClientEntry | None = None
        self._refresh_pending = False
        self._pending_ack: _PendingAck | None = None
        self._client: dict[ClientKey, _ClientEntry] = {}
        self._server: dict[ServerKey, _ServerEntry] = {}
        self._timers: dict[_Timer, float] = {}
        self._snapshot: LegSnapshot | None = None

    # ------------------------------------------------------------------ driven by the UA

    @property
    def ended(self) -> bool:
        return self._outcome is not None

    @property
    def outcome(self) -> CallOutcome | None:
        return self._outcome

    def start(self, now: float) -> None:
        self._stats.calls_placed += 1
        self._emit(Trying(self.sip_call_id))
        self._timers[_Timer.RING] = now + self.params.ring_timeout
        self._send_invite(now)

    def hangup(self, cause: HangupCause, now: float) -> None:
        if self._outcome is None and self._closing is None:
            if self._dialog is not None:
                self._close(CallOutcome(CallStatus.COMPLETED, cause, HangupSide.LOCAL, None, None), now)
            else:
                self._request_cancel(_Intent(CallStatus.CANCELLED, cause), now)
        self._maybe_release()

    def receive_response(self, response: SipResponse, now: float) -> bool:
        entry = self._client.get(transaction_key_for_response(response))
        if entry is None:
            return False
        entry.tx.receive(response, now)
        self._drain_client(entry, now)
        self._maybe_release()
        return True

    def receive_request(self, request: SipRequest, source: Address, transport: Transport, now: float) -> bool:
        """Handle a request with our Call-ID; False when it belongs to none of our dialogs."""
        try:
            return self._receive_request(request, source, transport, now)
        finally:
            self._maybe_release()

    def transport_error(self, destination: Address, transport: Transport, now: float) -> None:
        for entry in list(self._client.values()):
            hit = entry.destination == destination and entry.transport == transport
            if hit and self._client.get(entry.tx.key) is entry:
                entry.tx.transport_error(now)
                self._drain_client(entry, now)
        for server in list(self._server.values()):
            hit = server.source == destination and server.transport == transport
            if hit and self._server.get(server.tx.key) is server:
                server.tx.transport_error(now)
                self._drain_server(server, now)
        self._maybe_release()

    def on_timer(self, now: float) -> None:
        for entry in list(self._client.values()):
            deadline = entry.tx.next_deadline()
            if deadline is not None and deadline <= now and self._client.get(entry.tx.key) is entry:
                entry.tx.on_timer(now)
                self._drain_client(entry, now)
        for server in list(self._server.values()):
            deadline = server.tx.next_deadline()
            if deadline is not None and deadline <= now and self._server.get(server.tx.key) is server:
                server.tx.on_timer(now)
                self._drain_server(server, now)
        due = sorted((d, t.value, t) for t, d in self._timers.items() if d <= now)
        for deadline, _, timer in due:
            if self._timers.get(timer) != deadline:
                continue  # cancelled or re-armed by an earlier handler
            del self._timers[timer]
            self._TIMER_HANDLERS[timer](self, now)
        self._maybe_release()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in self._timers.values()]
        for entry in self._client.values():
            d = entry.tx.next_deadline()
            if d is not None:
                deadlines.append(d)
        for server in self._server.values():
            d = server.tx.next_deadline()
            if d is not None:
                deadlines.append(d)
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ output helpers

    def _emit(self, body: CallEventBody) -> None:
        self._outputs.append(CallEvent(self.call_ref, body))

    def _report_leg(self) -> None:
        """LegUpdated when what ending the call takes has changed (new INVITE branch, dialog
        confirmed, local CSeq or remote target moved)."""
        if self._dialog is not None and self.phase is CallPhase.CONFIRMED:
            snapshot = LegSnapshot.confirmed(self._dialog, self.params.destination, self.params.transport)
        elif self._invite is not None and self._dialog is None:
            invite = self._invite
            snapshot = LegSnapshot.inviting(invite.tx.request, invite.destination, invite.transport)
        else:
            return
        if snapshot != self._snapshot:
            self._snapshot = snapshot
            self._emit(LegUpdated(snapshot))

    def _transmit(self, data: bytes, destination: Address, transport: Transport) -> None:
        self._stats.sent += 1
        self._outputs.append(Transmit(data, destination, transport))

    def _via(self, transport: Transport) -> str:
        port = self._settings.port(transport)
        host = format_host(self._settings.local_host)
        return f"SIP/2.0/{transport.upper()} {host}:{port};branch={new_branch()};rport"

    def _hop(self, dialog: Dialog) -> tuple[Address, Transport]:
        fallback = (self.params.destination, self.params.transport)
        destination, transport = dialog.next_hop(self.params.transport, fallback)
        if self._settings.port(transport) is None:
            transport = self.params.transport
        return destination, transport

    # ------------------------------------------------------------------ client transactions

    def _send_client(
        self,
        request: SipRequest,
        purpose: _Purpose,
        destination: Address,
        transport: Transport,
        now: float,
        *,
        auth_retries: int = 0,
        retried_422: bool = False,
    ) -> _ClientEntry:
        reliable = transport == "tcp"
        tx: InviteClientTransaction | NonInviteClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(request, reliable, self._settings.timers, now)
        else:
            tx = NonInviteClientTransaction(request, reliable, self._settings.timers, now)
        entry = _ClientEntry(tx, purpose, destination, transport, auth_retries, retried_422)
        self._client[tx.key] = entry
        tx.start(now)
        self._drain_client(entry, now)
        return entry

    def _drain_client(self, entry: _ClientEntry, now: float) -> None:
        for out in entry.tx.pop_outputs():
            if isinstance(out, Send):
                self._transmit(bytes(out.message), entry.destination, entry.transport)
            elif isinstance(out, Deliver):
                if isinstance(out.message, SipResponse):
                    self._on_client_response(entry, out.message, now)
            elif isinstance(out, Timeout):
                self._on_client_failure(entry, 408, now, transport_failed=False)
            elif isinstance(out, TransportFailure):
                self._on_client_failure(entry, 503, now, transport_failed=True)
            elif isinstance(out, Terminated) and self._client.get(entry.tx.key) is entry:
                del self._client[entry.tx.key]

    def _on_client_response(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        if response.is_success and entry.tx.request.method == "INVITE":
            sent = self._acks.get((response.to_tag or "", response.cseq.number))
            if sent is not None:
                self._transmit(*sent)  # a retransmitted 2xx: the same ACK again (13.2.2.4)
                return
        if entry.purpose is _Purpose.INVITE:
            self._on_invite_response(entry, response, now)
        elif entry.purpose is _Purpose.BYE:
            self._on_bye_response(entry, response, now)
        elif entry.purpose is _Purpose.REFRESH:
            self._on_refresh_response(entry, response, now)

    def _on_client_failure(
        self, entry: _ClientEntry, status: int, now: float, *, transport_failed: bool
    ) -> None:
        if entry.purpose is _Purpose.INVITE and entry is self._invite:
            if self._intent is not None:
                self._end(self._intent_outcome(None, None))
            elif transport_failed:
                self._end(
                    CallOutcome(CallStatus.FAILED, HangupCause.TRANSPORT_ERROR, HangupSide.REMOTE, 503, reason_phrase(503)
                    )
                )
            else:
                self._end(
                    CallOutcome(CallStatus.FAILED, HangupCause.TIMEOUT, HangupSide.REMOTE, 408, reason_phrase(408))
                )
        elif entry.purpose is _Purpose.BYE:
            self._finish_close()
        elif entry.purpose is _Purpose.REFRESH:
            self._refresh_pending = False
            self._timers.pop(_Timer.REFRESH_WAIT, None)
            if not transport_failed and self.phase is CallPhase.CONFIRMED:
                self._dialog_gone(status, reason_phrase(status))

    def _send_invite(self, now: float, *, auth_retries: int = 0, retried_422: bool = False) -> None:
        params = self.params
        uri = params.request_uri.copy()
        headers: list[tuple[str, str]] = [
            ("User-Agent", self._settings.user_agent),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
        ]
        if self._session_expires:
            headers.append(("Session-Expires", f"{self._session_expires};refresher=uac"))
            headers.append(("Min-SE", str(self._min_se)))
        if self._digest is not None and self._digest.realms:
            headers.extend(self._digest.authorization_headers("INVITE", str(uri), self._local_sdp_bytes))
        headers.extend(params.extra_headers)
        request = make_request(
            "INVITE",
            uri,
            from_=self._local_from,
            to=NameAddr(uri=params.to_uri.copy()),
            call_id=self.sip_call_id,
            cseq=self._cseq,
            via=self._via(params.transport),
            contact=self._contact,
            headers=headers,
            body=self._local_sdp_bytes,
            content_type=SDP,
        )
        self._invite = self._send_client(
            request,
            _Purpose.INVITE,
            params.destination,
            params.transport,
            now,
            auth_retries=auth_retries,
            retried_422=retried_422,
        )
        self._report_leg()

    # ------------------------------------------------------------------ INVITE responses

    def _on_invite_response(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        if response.status < 200:
            if entry is self._invite and self._outcome is None:
                self._on_provisional(entry, response, now)
        elif response.status < 300:
            self._on_invite_success(entry, response, now)
        elif entry is self._invite:
            self._on_invite_failure(entry, response, now)

    def _on_provisional(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        entry.provisional = True
        if self.phase is CallPhase.CALLING:
            self.phase = CallPhase.EARLY
        tag = response.to_tag
        early_media: NegotiatedMedia | None = None
        sdp = _sdp_body(response)
        if sdp is not None:
            early_media = self._negotiate(self._offer, sdp)
        known = tag in self._early or len(self._early) < MAX_EARLY_DIALOGS
        if tag is not None and response.status > 100 and known:
            if tag not in self._early:
                with contextlib.suppress(DialogError):
                    self._early[tag] = Dialog.from_uac_response(entry.tx.request, response)
            if early_media is not None and sdp is not None:
                self._early_sdp[tag] = sdp
        if self._intent is not None:
            if not self._cancel_sent:
                self._send_cancel(now)
            return
        if response.status > 100:
            signature = (response.status, tag, response.body)
            if signature != self._last_ringing:
                self._last_ringing = signature
                self._emit(Ringing(response.status, response.reason, early_media))

    def _on_invite_success(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        tag = response.to_tag or ""
        try:
            dialog = Dialog.from_uac_response(entry.tx.request, response)
        except DialogError:
            return
        self._send_ack(dialog, entry.tx.request, now)
        if self._dialog is not None or self._outcome is not None:
            # A second dialog from a forking proxy (or a call already over): we keep one.
            self._send_bye(dialog, _Purpose.FORK_BYE, now)
            return
        self._dialog = dialog
        self._early.clear()
        self._timers.pop(_Timer.RING, None)
        self._timers.pop(_Timer.CANCEL_WAIT, None)
        if self._digest is not None:
            self._digest.on_success()
        if self._intent is not None:
            # The 2xx crossed our CANCEL: the call is accepted and hung up at once.
            self._close(self._intent_outcome(None, None), now)
            return
        sdp = _sdp_body(response) or self._early_sdp.get(tag)
        media = self._negotiate(self._offer, sdp) if sdp is not None else None
        if media is None:
            self._close(
                CallOutcome(CallStatus.FAILED, HangupCause.CODEC_MISMATCH, HangupSide.LOCAL, 488, reason_phrase(488)
                ),
                now,
            )
            return
        self.phase = CallPhase.CONFIRMED
        self.media = media
        self._report_leg()
        self._emit(Answered(media, response.status))
        self._apply_session_response(response, now)

    def _on_invite_failure(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        status, reason = response.status, response.reason
        if self._intent is not None:
            if self._cancel_sent or status in (401, 407, 422, 487):
                self._end(self._intent_outcome(status, reason))
                return
        elif self._retry(entry, response, now):
            return
        result, cause = _FINAL_OUTCOMES.get(status, (CallStatus.FAILED, HangupCause.REJECTED))
        self._end(CallOutcome(result, cause, HangupSide.REMOTE, status, reason))

    def _challenge(self, entry: _ClientEntry, response: SipResponse) -> bool:
        """Feed a 401/407 to the digest session; True when a retry is allowed."""
        if self._digest is None or entry.auth_retries >= self.params.max_auth_attempts:
            return False
        try:
            self._digest.on_challenge(
                www_authenticate=response.www_authenticate,
                proxy_authenticate=response.proxy_authenticate,
            )
        except DigestError:
            return False
        return True

    def _retry(self, entry: _ClientEntry, response: SipResponse, now: float) -> bool:
        """A new INVITE for a 401/407 (credentials) or a 422 (longer session interval)."""
        if response.status in (401, 407):
            return self._retry_auth(entry, response, now)
        if response.status == 422:
            return self._retry_422(entry, response, now)
        return False

    def _retry_auth(self, entry: _ClientEntry, response: SipResponse, now: float) -> bool:
        if not self._challenge(entry, response):
            return False
        self._cseq += 1
        self._send_invite(now, auth_retries=entry.auth_retries + 1, retried_422=entry.retried_422)
        return True

    def _retry_422(self, entry: _ClientEntry, response: SipResponse, now: float) -> bool:
        min_se = _min_se(response)
        if entry.retried_422 or min_se is None:
            return False
        self._min_se = max(self._min_se, min_se)
        self._session_expires = self._min_se
        self._cseq += 1
        self._send_invite(now, auth_retries=entry.auth_retries, retried_422=True)
        return True

    def _negotiate(self, offer: SessionDescription, sdp: bytes) -> NegotiatedMedia | None:
        try:
            media = negotiate_answer(offer, SessionDescription.parse(sdp))
        except SdpError:
            return None
        return None if media.rejected else media

    def _intent_outcome(self, status: int | None, reason: str | None) -> CallOutcome:
        assert self._intent is not None
        return CallOutcome(self._intent.result, self._intent.cause, HangupSide.LOCAL, status, reason)

    # ------------------------------------------------------------------ CANCEL

    def _request_cancel(self, intent: _Intent, now: float) -> None:
        if self._intent is not None or self._dialog is not None or self._outcome is not None:
            return
        self._intent = intent
        self._timers.pop(_Timer.RING, None)
        if self._invite is not None and self._invite.provisional:
            self._send_cancel(now)

    def _send_cancel(self, now: float) -> None:
        invite = self._invite
        if invite is None or self._cancel_sent:
            return
        self._cancel_sent = True
        self.phase = CallPhase.CANCELLING
        self._timers[_Timer.CANCEL_WAIT] = now + 64 * self._t1
        cancel = make_cancel(invite.tx.request)
        self._send_client(cancel, _Purpose.CANCEL, invite.destination, invite.transport, now)

    # ------------------------------------------------------------------ dialog requests we send

    def _send_ack(self, dialog: Dialog, invite: SipRequest, now: float) -> None:
        destination, transport = self._hop(dialog)
        ack = dialog.ack(invite, via=self._via(transport))
        data = bytes(ack)
        self._acks[(dialog.remote_tag, invite.cseq.number)] = (data, destination, transport)
        self._transmit(data, destination, transport)

    def _send_in_dialog(
        self,
        dialog: Dialog,
        method: str,
        purpose: _Purpose,
        now: float,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        auth: bool = False,
        auth_retries: int = 0,
        retried_422: bool = False,
    ) -> _ClientEntry:
        destination, transport = self._hop(dialog)
        all_headers = list(headers)
        if auth and self._digest is not None:
            request_uri, _ = dialog.request_target()
            all_headers.extend(self._digest.authorization_headers(method, str(request_uri), body))
        request = dialog.new_request(
            method,
            via=self._via(transport),
            contact=self._contact if method == "INVITE" else None,
            headers=all_headers,
            body=body,
            content_type=content_type,
        )
        return self._send_client(
            request, purpose, destination, transport, now, auth_retries=auth_retries, retried_422=retried_422
        )

    def _send_bye(self, dialog: Dialog, purpose: _Purpose, now: float, *, auth_retries: int = 0) -> None:
        self._send_in_dialog(
            dialog,
            "BYE",
            purpose,
            now,
            headers=[("User-Agent", self._settings.user_agent)],
            auth=auth_retries > 0,
            auth_retries=auth_retries,
        )

    def _close(self, outcome: CallOutcome, now: float) -> None:
        """End the confirmed dialog with a BYE; Ended follows when the BYE completes."""
        if self._closing is not None or self._outcome is not None or self._dialog is None:
            return
        self._closing = outcome
        self.phase = CallPhase.CLOSING
        self._timers.clear()
        self._pending_ack = None
        self._send_bye(self._dialog, _Purpose.BYE, now)

    def _on_bye_response(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        if response.status < 200:
            return
        if response.status in (401, 407) and self._dialog is not None and self._challenge(entry, response):
            self._send_bye(self._dialog, _Purpose.BYE, now, auth_retries=entry.auth_retries + 1)
            return
        self._finish_close()

    def _finish_close(self) -> None:
        if self._closing is not None:
            self._end(self._closing)

    def _end(self, outcome: CallOutcome) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        self.phase = CallPhase.ENDED
        self._timers.clear()
        self._pending_ack = None
        for key, entry in list(self._client.items()):
            # An INVITE that got a 1xx has no timeout of its own (17.1.1.2): stop waiting for it.
            if (
                isinstance(entry.tx, InviteClientTransaction)
                and entry.tx.state is TransactionState.PROCEEDING
            ):
                del self._client[key]
        self._emit(Ended(outcome))

    def _dialog_gone(self, status: int, reason: str) -> None:
        self._end(CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE, status, reason))

    def _maybe_release(self) -> None:
        if self.released or self._outcome is None or self._client or self._server or self._timers:
            return
        self.released = True
        self._emit(Released())

    # ------------------------------------------------------------------ session timers (RFC 4028)

    def _apply_session_response(self, response: SipResponse, now: float) -> None:
        """A 2xx to our INVITE or refresh sets the session timer (none without Session-Expires)."""
        try:
            negotiated = _session_expires(response)
        except SipHeaderError:
            negotiated = None
        if negotiated is None:
            self._session = None
            self._timers.pop(_Timer.SESSION_REFRESH, None)
            self._timers.pop(_Timer.SESSION_EXPIRY, None)
            return
        interval, refresher = negotiated
        # refresher=uac names us, the UAC of that transaction; RFC 4028 says a 2xx must name one.
        self._session = _SessionTimer(interval, refresher != "uas")
        self._arm_session(now)

    def _arm_session(self, now: float) -> None:
        session = self._session
        if session is None or self.phase is not CallPhase.CONFIRMED:
            return
        if session.we_refresh:
            self._timers[_Timer.SESSION_REFRESH] = now + session.interval / 2
        else:
            self._timers.pop(_Timer.SESSION_REFRESH, None)
        self._timers[_Timer.SESSION_EXPIRY] = now + session.interval - min(32.0, session.interval / 3)

    def _peer_session(
        self, request: SipRequest, offered: tuple[int, str | None] | None, now: float
    ) -> list[tuple[str, str]]:
        """A re-INVITE/UPDATE from them we accept refreshes the session; returns 2xx headers."""
        if offered is None:
            self._arm_session(now)  # no timer requested: any accepted request still shows liveness
            return []
        interval, refresher = offered
        # In their request "uac" is them; without a preference we let them refresh.
        we_refresh = refresher == "uas"
        self._session = _SessionTimer(interval, we_refresh)
        self._arm_session(now)
        headers = [("Session-Expires", f"{interval};refresher={'uas' if we_refresh else 'uac'}")]
        if "timer" in _option_tags(request, "Supported"):
            headers.append(("Require", "timer"))
        return headers

    def _refresh_due(self, now: float) -> None:
        if self.phase is not CallPhase.CONFIRMED or self._session is None:
            return
        if self._refresh_pending or self._pending_ack is not None:
            # 14.1: no new INVITE while another one is in progress in either direction.
            self._timers[_Timer.SESSION_REFRESH] = now + 4 * self._t1
            return
        self._send_refresh(now)

    def _send_refresh(self, now: float, *, auth_retries: int = 0, retried_422: bool = False) -> None:
        assert self._dialog is not None and self._session is not None
        interval = self._session.interval
        headers = [
            ("User-Agent", self._settings.user_agent),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
            ("Session-Expires", f"{interval};refresher=uac"),
            ("Min-SE", str(min(self._min_se, interval))),
        ]
        self._refresh_pending = True
        self._timers[_Timer.REFRESH_WAIT] = now + 64 * self._t1
        self._refresh = self._send_in_dialog(
            self._dialog,
            "INVITE",
            _Purpose.REFRESH,
            now,
            headers=headers,
            body=self._local_sdp_bytes,
            content_type=SDP,
            auth=auth_retries > 0,
            auth_retries=auth_retries,
            retried_422=retried_422,
        )
        self._report_leg()

    def _on_refresh_response(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        status = response.status
        if status < 200:
            return
        self._refresh_pending = False
        self._timers.pop(_Timer.REFRESH_WAIT, None)
        dialog = self._dialog
        if status < 300:
            if dialog is None:
                return
            self._send_ack(dialog, entry.tx.request, now)
            if self.phase is not CallPhase.CONFIRMED:
                return
            dialog.refresh_target(response)
            self._report_leg()
            sdp = _sdp_body(response)
            if sdp is not None:
                media = self._negotiate(self._local_sdp, sdp)
                if media is not None:
                    self._media_changed(media)
            self._apply_session_response(response, now)
            return
        if self.phase is not CallPhase.CONFIRMED or self._session is None:
            return
        if status in (401, 407) and self._challenge(entry, response):
            self._send_refresh(now, auth_retries=entry.auth_retries + 1, retried_422=entry.retried_422)
        elif status == 422 and not entry.retried_422 and (min_se := _min_se(response)) is not None:
            self._min_se = max(self._min_se, min_se)
            self._session.interval = max(self._session.interval, min_se)
            self._send_refresh(now, auth_retries=entry.auth_retries, retried_422=True)
        elif status in (481, 408):
            self._dialog_gone(status, response.reason)
        else:
            self._arm_session(now)

    def _refresh_unanswered(self, now: float) -> None:
        # A 1xx stopped Timer B and no final came: cancel the refresh (RFC 3261 9.1). Its 487
        # then counts like any other refresh failure; the session expiry stands meanwhile.
        entry = self._refresh
        if entry is None or not self._refresh_pending or self._client.get(entry.tx.key) is not entry:
            return
        if entry.tx.state is TransactionState.PROCEEDING:
            cancel = make_cancel(entry.tx.request)
            self._send_client(cancel, _Purpose.CANCEL, entry.destination, entry.transport, now)

    def _session_expired(self, now: float) -> None:
        if self.phase is CallPhase.CONFIRMED:
            self._close(
                CallOutcome(CallStatus.COMPLETED, HangupCause.SESSION_EXPIRED, HangupSide.LOCAL, None, None), now
            )

    # ------------------------------------------------------------------ timers

    def _ring_timeout(self, now: float) -> None:
        self._request_cancel(_Intent(CallStatus.NO_ANSWER, HangupCause.RING_TIMEOUT), now)

    def _cancel_wait_expired(self, now: float) -> None:
        invite = self._invite
        if invite is not None and self._client.get(invite.tx.key) is invite:
            # The far end never ended the INVITE: abandon its transaction.
            del self._client[invite.tx.key]
        if self._dialog is None:
            self._end(self._intent_outcome(None, None))

    def _retransmit_2xx(self, now: float) -> None:
        pending = self._pending_ack
        if pending is None:
            return
        self._transmit(pending.data, pending.destination, pending.transport)
        pending.interval = min(pending.interval * 2, self._t2)
        self._timers[_Timer.RETRANSMIT_2XX] = now + pending.interval

    def _ack_wait_expired(self, now: float) -> None:
        self._pending_ack = None
        self._timers.pop(_Timer.RETRANSMIT_2XX, None)
        self._close(CallOutcome(CallStatus.COMPLETED, HangupCause.TIMEOUT, HangupSide.LOCAL, None, None), now)

    _TIMER_HANDLERS: ClassVar[dict[_Timer, Callable[[OutboundCall, float], None]]] = {
        _Timer.RING: _ring_timeout,
        _Timer.CANCEL_WAIT: _cancel_wait_expired,
        _Timer.SESSION_REFRESH: _refresh_due,
        _Timer.SESSION_EXPIRY: _session_expired,
        _Timer.REFRESH_WAIT: _refresh_unanswered,
        _Timer.RETRANSMIT_2XX: _retransmit_2xx,
        _Timer.ACK_WAIT: _ack_wait_expired,
    }

    # ------------------------------------------------------------------ requests from the far end

    def _receive_request(
        self, request: SipRequest, source: Address, transport: Transport, now: float
    ) -> bool:
        existing = self._server.get(server_key_for_request(request))
        if existing is not None:
            existing.tx.receive(request, now)  # a retransmission, or the ACK of a non-2xx
            self._drain_server(existing, now)
            return True
        dialog = self._match_dialog(request)
        if request.method == "ACK":
            if dialog is not None and dialog is self._dialog:
                self._on_dialog_ack(request, now)
            return dialog is not None
        if dialog is None:
            return False
        if request.method == "CANCEL":
            # The INVITEs we serve are answered at once, so a CANCEL can only be late (9.2).
            target = self._server.get(cancel_target_key(request))
            self._reply_stateless(request, 200 if target is not None else 481, source, transport)
            return True
        entry = self._start_server(request, source, transport, now)
        entry.tx.start(now)  # delivers the request to _on_dialog_request
        self._drain_server(entry, now)
        return True

    def _match_dialog(self, request: SipRequest) -> Dialog | None:
        if self._dialog is not None:
            return self._dialog if self._dialog.matches(request) else None
        early = self._early.get(request.from_tag or "")
        return early if early is not None and early.matches(request) else None

    def _start_server(
        self, request: SipRequest, source: Address, transport: Transport, now: float
    ) -> _ServerEntry:
        reliable = transport == "tcp"
        tx: InviteServerTransaction | NonInviteServerTransaction
        if request.method == "INVITE":
            tx = InviteServerTransaction(request, reliable, self._settings.timers, now, trying_delay=None)
        else:
            tx = NonInviteServerTransaction(request, reliable, self._settings.timers, now)
        entry = _ServerEntry(tx, source, transport)
        self._server[tx.key] = entry
        return entry

    def _drain_server(self, entry: _ServerEntry, now: float) -> None:
        for out in entry.tx.pop_outputs():
            if isinstance(out, Send):
                self._transmit(bytes(out.message), entry.source, entry.transport)
            elif isinstance(out, Deliver):
                message = out.message
                if isinstance(message, SipRequest):
                    if message.method == "ACK":
                        self._on_dialog_ack(message, now)
                    else:
                        self._dispatch_request(entry, message, now)
            elif isinstance(out, Terminated) and self._server.get(entry.tx.key) is entry:
                del self._server[entry.tx.key]

    def _reply(
        self,
        entry: _ServerEntry,
        request: SipRequest,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        all_headers: list[tuple[str, str]] = [("Server", self._settings.user_agent)]
        if 200 <= status < 300 and request.method in ("INVITE", "UPDATE"):
            all_headers.append(("Contact", self._contact))
        all_headers.extend(headers)
        response = make_response(
            request, status, reason, headers=all_headers, body=body, content_type=content_type
        )
        if status == 481:
            self._stats.answered_481 += 1
        elif status == 400:
            self._stats.answered_400 += 1
        if entry.tx.state is not TransactionState.TERMINATED:
            entry.tx.send_response(response, now)
            self._drain_server(entry, now)
        return response

    def _reply_stateless(
        self, request: SipRequest, status: int, source: Address, transport: Transport
    ) -> None:
        if status == 481:
            self._stats.answered_481 += 1
        response = make_response(request, status, headers=[("Server", self._settings.user_agent)])
        self._transmit(bytes(response), source, transport)

    def _dispatch_request(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        try:
            self._on_dialog_request(entry, request, now)
        except (SipError, ValueError) as exc:
            # A typed error names its answer (bad SDP 400, no audio in common 488, ...).
            self._stats.bad_messages += 1
            self._answer_unanswered(entry, request, answer_status(exc), now)
        finally:
            # Every request gets a final response, or its transaction (and the call) never ends.
            self._answer_unanswered(entry, request, 500, now)

    def _answer_unanswered(self, entry: _ServerEntry, request: SipRequest, status: int, now: float) -> None:
        unanswered = entry.tx.state in (TransactionState.TRYING, TransactionState.PROCEEDING)
        if unanswered and self._server.get(entry.tx.key) is entry:
            self._reply(entry, request, status, now)

    def _on_dialog_request(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        method = request.method
        dialog = self._match_dialog(request)
        if dialog is None or self._outcome is not None:
            self._reply(entry, request, 481, now)
            return
        if not dialog.accept_remote_cseq(request):
            self._reply(entry, request, 500, now, reason="Out Of Order CSeq")
            return
        if self.phase is CallPhase.CLOSING:
            # Our BYE is on its way: a crossing BYE is fine, anything else is too late.
            self._reply(entry, request, 200 if method == "BYE" else 481, now)
            return
        if dialog is not self._dialog and method not in ("OPTIONS", "INFO"):
            self._reply(entry, request, 481, now)  # early dialog: no session to change or end yet
            return
        if method != "BYE":
            unsupported = sorted(_option_tags(request, "Require") - {"timer"})
            if unsupported:
                self._reply(entry, request, 420, now, headers=[("Unsupported", ", ".join(unsupported))])
                return
        handler = self._REQUEST_HANDLERS.get(method)
        if handler is not None:
            handler(self, entry, request, now)
        elif method in KNOWN_UNSUPPORTED:
            self._reply(entry, request, 405, now, headers=[("Allow", ALLOW)])
        else:
            self._reply(entry, request, 501, now)

    def _on_bye(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        self._reply(entry, request, 200, now)
        self._end(CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE, None, None))

    def _on_options(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        self._reply(
            entry,
            request,
            200,
            now,
            headers=[("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED)],
        )

    def _on_info(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        dtmf = parse_dtmf_info(request.header("Content-Type"), request.body)
        self._reply(entry, request, 200, now)
        if dtmf is not None:
            self._emit(DtmfReceived(dtmf.digit, dtmf.duration_ms))

    def _offer_pending(self) -> bool:
        """An offer of ours awaits its answer (RFC 3261 14.2 / RFC 6337: answer 491)."""
        return self._refresh_pending or (
            self._pending_ack is not None and self._pending_ack.offer is not None
        )

    def _session_request_checks(
        self, entry: _ServerEntry, request: SipRequest, now: float
    ) -> tuple[bool, tuple[int, str | None] | None]:
        """Checks shared by re-INVITE and UPDATE; (False, _) when a response was already sent."""
        try:
            offered = _session_expires(request)
        except SipHeaderError as exc:
            self._reply(entry, request, exc.status, now, reason="Bad Session-Expires")
            return False, None
        if offered is not None and offered[0] < self._min_se:
            self._reply(entry, request, 422, now, headers=[("Min-SE", str(self._min_se))])
            return False, None
        if request.body.strip() and request.content_type != SDP:
            self._reply(entry, request, 415, now, headers=[("Accept", SDP)])
            return False, None
        return True, offered

    def _answer(
        self, entry: _ServerEntry, request: SipRequest, sdp: bytes, now: float
    ) -> NegotiatedMedia | None:
        """Answer their offer with our media; None when an error response was sent instead."""
        media = self.params.local_media
        try:
            offer = SessionDescription.parse(sdp)
            answer, negotiated = answer_offer(
                offer,
                media.address,
                media.rtp_port,
                media.codecs,
                self._sdp_session_id,
                self._sdp_version + 1,
                ptime=media.ptime,
                telephone_events="0-16" if media.dtmf_payload_type is not None else "",
            )
        except SdpError as exc:
            self._refuse_offer(entry, request, exc, now)
            return None
        self._sdp_version += 1
        self._set_local_sdp(answer)
        return negotiated

    def _refuse_offer(self, entry: _ServerEntry, request: SipRequest, error: SdpError, now: float) -> None:
        """An offer we cannot answer gets the error's status: 400 for SDP that does not parse,
        488 (with a Warning saying why) when we have no audio in common."""
        reason = "Malformed SDP" if isinstance(error, SdpParseError) else None
        headers = []
        if isinstance(error, SdpNegotiationError):
            warning = error.warning(format_host(self._settings.local_host))
            if warning is not None:
                headers.append(("Warning", warning))
        self._reply(entry, request, error.status, now, reason=reason, headers=headers)

    def _set_local_sdp(self, sdp: SessionDescription) -> None:
        self._local_sdp = sdp
        self._local_sdp_bytes = sdp.to_bytes()

    def _on_reinvite(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        if self._offer_pending():
            self._reply(entry, request, 491, now)
            return
        ok, offered = self._session_request_checks(entry, request, now)
        if not ok:
            return
        sdp = _sdp_body(request)
        media: NegotiatedMedia | None = None
        our_offer: SessionDescription | None = None
        if sdp is not None:
            media = self._answer(entry, request, sdp, now)
            if media is None:
                return
        else:
            # An offerless re-INVITE: we offer in the 2xx, the ACK brings the answer.
            local = self.params.local_media
            self._sdp_version += 1
            our_offer = build_offer(
                self._sdp_session_id,
                self._sdp_version,
                local.address,
                local.rtp_port,
                local.codecs,
                local.dtmf_payload_type,
                local.ptime,
            )
            self._set_local_sdp(our_offer)
        assert self._dialog is not None
        self._dialog.refresh_target(request)
        self._report_leg()
        headers = [("Allow", ALLOW), ("Supported", SUPPORTED), *self._peer_session(request, offered, now)]
        response = self._reply(
            entry, request, 200, now, headers=headers, body=self._local_sdp_bytes, content_type=SDP
        )
        self._pending_ack = _PendingAck(
            request.cseq.number, bytes(response), entry.source, entry.transport, self._t1, our_offer
        )
        if entry.transport == "udp":
            self._timers[_Timer.RETRANSMIT_2XX] = now + self._t1
        self._timers[_Timer.ACK_WAIT] = now + 64 * self._t1
        if media is not None:
            self._media_changed(media)

    def _on_update(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        sdp = _sdp_body(request)
        if sdp is not None and self._offer_pending():
            self._reply(entry, request, 491, now)
            return
        ok, offered = self._session_request_checks(entry, request, now)
        if not ok:
            return
        media: NegotiatedMedia | None = None
        if sdp is not None:
            media = self._answer(entry, request, sdp, now)
            if media is None:
                return
        assert self._dialog is not None
        self._dialog.refresh_target(request)
        self._report_leg()
        headers = [("Allow", ALLOW), ("Supported", SUPPORTED), *self._peer_session(request, offered, now)]
        if media is not None:
            self._reply(
                entry, request, 200, now, headers=headers, body=self._local_sdp_bytes, content_type=SDP
            )
            self._media_changed(media)
        else:
            self._reply(entry, request, 200, now, headers=headers)

    def _on_dialog_ack(self, ack: SipRequest, now: float) -> None:
        pending = self._pending_ack
        if pending is None or ack.cseq.number != pending.cseq:
            return
        self._pending_ack = None
        self._timers.pop(_Timer.RETRANSMIT_2XX, None)
        self._timers.pop(_Timer.ACK_WAIT, None)
        if pending.offer is None or self.phase is not CallPhase.CONFIRMED:
            return
        sdp = _sdp_body(ack)
        media = self._negotiate(pending.offer, sdp) if sdp is not None else None
        if media is None:
            self._close(
                CallOutcome(CallStatus.FAILED, HangupCause.CODEC_MISMATCH, HangupSide.LOCAL, 488, reason_phrase(488)
                ),
                now,
            )
            return
        self._media_changed(media)

    def _media_changed(self, media: NegotiatedMedia) -> None:
        # Carriers refresh with unchanged SDP every few minutes: only real changes are news.
        if media != self.media:
            self.media = media
            self._emit(MediaUpdated(media))

    _REQUEST_HANDLERS: ClassVar[
        dict[str, Callable[[OutboundCall, _ServerEntry, SipRequest, float], None]]
    ] = {
        "BYE": _on_bye,
        "OPTIONS": _on_options,
        "INFO": _on_info,
        "INVITE": _on_reinvite,
        "UPDATE": _on_update,
    }
