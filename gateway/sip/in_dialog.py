"""Requests the far end sends within a call's dialog: the UAS side of an outbound call (sans-I/O).

``InDialogServer`` answers BYE, OPTIONS, INFO (DTMF), re-INVITE and UPDATE through server
transactions, absorbs retransmissions, answers a late CANCEL, and takes the ACK of a 2xx it
sent. What it needs from its call is ``DialogCall`` (``OutboundCall`` is one): the dialogs,
the phase, and the few things a request can change (end it, close it, new media, a target
refresh, a session refresh).

Request handling
----------------
::

    our dialog ended              -> 481
    CSeq below the last one       -> 500 Out Of Order CSeq (12.2.2)
    CLOSING (our BYE is out)      -> BYE 200 (crossing BYEs), anything else 481
    early dialog                  -> OPTIONS and INFO only (at most MAX_EARLY_DIALOGS); else 481
    Require we lack (not BYE)     -> 420 with Unsupported
    BYE                           -> 200, Ended(completed, REMOTE_HANGUP, REMOTE)
    OPTIONS                       -> 200 with Allow, Accept, Supported
    INFO                          -> 200 (DtmfReceived when the body is a DTMF digit)
    re-INVITE / UPDATE            -> 491 while an offer of ours awaits its answer; a bad
                                     Session-Expires 400, one below our Min-SE 422, a body
                                     that is not SDP 415, SDP we cannot use 400/488 (Warning);
                                     else 200 (with our answer, or our offer in a re-INVITE's)
    REGISTER, REFER, ...          -> 405 with Allow; unknown methods 501

Choices where RFC 3261 leaves room
----------------------------------
* Every request of the far end gets a final response, since an unanswered server
  transaction would keep the call from being Released: a handler that raises a typed error
  answers with its status (``gateway.sip.errors``), any other failure with 500.
* An offerless re-INVITE gets our offer in the 2xx; the ACK brings the answer. An ACK that
  should carry it but has none usable: BYE, Ended(failed, CODEC_MISMATCH, LOCAL, 488).
* A 2xx we sent to a re-INVITE that never gets its ACK (64*T1): BYE,
  Ended(completed, TIMEOUT, LOCAL).
* MediaUpdated is emitted only when the negotiated media differ from the current ones
  (an identical re-INVITE is a refresh, not news).
* In-dialog requests are accepted from any source (the dialog's Call-ID and tags are
  the credential).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.sip.call_sdp import SDP, LocalSdp, negotiate, sdp_body
from gateway.sip.call_state import CallPhase, CallTimer
from gateway.sip.dialog import Address, Dialog, Transport
from gateway.sip.dtmf_info import parse_dtmf_info
from gateway.sip.errors import SipError, SipHeaderError, answer_status
from gateway.sip.message import SipRequest, SipResponse, make_response, reason_phrase
from gateway.sip.offer_answer import SdpNegotiationError
from gateway.sip.sdp import NegotiatedMedia, SdpError, SdpParseError, SessionDescription
from gateway.sip.session_timer import SessionTimer, option_tags, session_expires
from gateway.sip.transaction import (
    Deliver,
    InviteServerTransaction,
    NonInviteServerTransaction,
    Send,
    ServerKey,
    Terminated,
    TransactionState,
    cancel_target_key,
    server_key_for_request,
)
from gateway.sip.ua_events import (
    ACCEPT,
    ALLOW,
    KNOWN_UNSUPPORTED,
    SUPPORTED,
    CallEventBody,
    CallSettings,
    DtmfReceived,
    UaStats,
)
from gateway.sip.uri import format_host

__all__ = ["DialogCall", "InDialogServer"]


class DialogCall(Protocol):
    """What the far end's requests need from their call."""

    @property
    def phase(self) -> CallPhase: ...

    @property
    def ended(self) -> bool: ...

    @property
    def dialog(self) -> Dialog | None:
        """The confirmed dialog, once there is one."""

    @property
    def refreshing(self) -> bool:
        """Our session refresh re-INVITE awaits its final response (an offer of ours)."""

    def match_dialog(self, request: SipRequest) -> Dialog | None:
        """The dialog (confirmed, or early) a request belongs to."""

    def emit(self, body: CallEventBody) -> None: ...

    def transmit(self, data: bytes, destination: Address, transport: Transport) -> None: ...

    def report_leg(self) -> None: ...

    def media_changed(self, media: NegotiatedMedia) -> None: ...

    def peer_refreshed(
        self, request: SipRequest, offered: tuple[int, str | None] | None, now: float
    ) -> list[tuple[str, str]]:
        """Their accepted re-INVITE/UPDATE refreshed the session; the headers for our 2xx."""

    def end(self, outcome: CallOutcome) -> None: ...

    def close(self, outcome: CallOutcome, now: float) -> None: ...


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


class InDialogServer:
    """The far end's requests within one call's dialog; driven by that call."""

    def __init__(
        self,
        call: DialogCall,
        settings: CallSettings,
        stats: UaStats,
        timers: dict[CallTimer, float],
        sdp: LocalSdp,
        session: SessionTimer,
        contact: str,
    ) -> None:
        self._call = call
        self._settings = settings
        self._stats = stats
        self._timers = timers  # the call's own: one table, fired in deadline order
        self._sdp = sdp
        self._session = session
        self._contact = contact
        self._t1 = settings.timers.t1
        self._t2 = settings.timers.t2
        self._server: dict[ServerKey, _ServerEntry] = {}
        self._pending_ack: _PendingAck | None = None

    # ------------------------------------------------------------------ driven by the call

    @property
    def idle(self) -> bool:
        """No server transaction is left."""
        return not self._server

    @property
    def awaiting_ack(self) -> bool:
        """Our 2xx to their re-INVITE still waits for its ACK."""
        return self._pending_ack is not None

    def stop_waiting_for_ack(self) -> None:
        """The call is closing or over: no 2xx of ours is retransmitted any more."""
        self._pending_ack = None

    def receive(self, request: SipRequest, source: Address, transport: Transport, now: float) -> bool:
        """A request with the call's Call-ID; False when it belongs to none of its dialogs."""
        existing = self._server.get(server_key_for_request(request))
        if existing is not None:
            existing.tx.receive(request, now)  # a retransmission, or the ACK of a non-2xx
            self._drain(existing, now)
            return True
        dialog = self._call.match_dialog(request)
        if request.method == "ACK":
            if dialog is not None and dialog is self._call.dialog:
                self._on_ack(request, now)
            return dialog is not None
        if dialog is None:
            return False
        if request.method == "CANCEL":
            # The INVITEs we serve are answered at once, so a CANCEL can only be late (9.2).
            target = self._server.get(cancel_target_key(request))
            self._reply_stateless(request, 200 if target is not None else 481, source, transport)
            return True
        entry = self._start(request, source, transport, now)
        entry.tx.start(now)  # delivers the request to _on_request
        self._drain(entry, now)
        return True

    def transport_error(self, destination: Address, transport: Transport, now: float) -> None:
        for entry in list(self._server.values()):
            hit = entry.source == destination and entry.transport == transport
            if hit and self._server.get(entry.tx.key) is entry:
                entry.tx.transport_error(now)
                self._drain(entry, now)

    def on_timer(self, now: float) -> None:
        """Fire the due timers of the server transactions (the call fires its own)."""
        for entry in list(self._server.values()):
            deadline = entry.tx.next_deadline()
            if deadline is not None and deadline <= now and self._server.get(entry.tx.key) is entry:
                entry.tx.on_timer(now)
                self._drain(entry, now)

    def deadlines(self) -> list[float]:
        return [d for entry in self._server.values() if (d := entry.tx.next_deadline()) is not None]

    def retransmit_2xx(self, now: float) -> None:
        pending = self._pending_ack
        if pending is None:
            return
        self._call.transmit(pending.data, pending.destination, pending.transport)
        pending.interval = min(pending.interval * 2, self._t2)
        self._timers[CallTimer.RETRANSMIT_2XX] = now + pending.interval

    def ack_wait_expired(self, now: float) -> None:
        self._pending_ack = None
        self._timers.pop(CallTimer.RETRANSMIT_2XX, None)
        self._call.close(
            CallOutcome(CallStatus.COMPLETED, HangupCause.TIMEOUT, HangupSide.LOCAL, None, None), now
        )

    # ------------------------------------------------------------------ server transactions

    def _start(self, request: SipRequest, source: Address, transport: Transport, now: float) -> _ServerEntry:
        reliable = transport == "tcp"
        tx: InviteServerTransaction | NonInviteServerTransaction
        if request.method == "INVITE":
            tx = InviteServerTransaction(request, reliable, self._settings.timers, now, trying_delay=None)
        else:
            tx = NonInviteServerTransaction(request, reliable, self._settings.timers, now)
        entry = _ServerEntry(tx, source, transport)
        self._server[tx.key] = entry
        return entry

    def _drain(self, entry: _ServerEntry, now: float) -> None:
        for out in entry.tx.pop_outputs():
            if isinstance(out, Send):
                self._call.transmit(bytes(out.message), entry.source, entry.transport)
            elif isinstance(out, Deliver):
                message = out.message
                if isinstance(message, SipRequest):
                    if message.method == "ACK":
                        self._on_ack(message, now)
                    else:
                        self._dispatch(entry, message, now)
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
            self._drain(entry, now)
        return response

    def _reply_stateless(self, request: SipRequest, status: int, source: Address, transport: Transport) -> None:
        if status == 481:
            self._stats.answered_481 += 1
        response = make_response(request, status, headers=[("Server", self._settings.user_agent)])
        self._call.transmit(bytes(response), source, transport)

    def _dispatch(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        try:
            self._on_request(entry, request, now)
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

    # ------------------------------------------------------------------ the requests

    def _on_request(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        method = request.method
        dialog = self._call.match_dialog(request)
        if dialog is None or self._call.ended:
            self._reply(entry, request, 481, now)
            return
        if not dialog.accept_remote_cseq(request):
            self._reply(entry, request, 500, now, reason="Out Of Order CSeq")
            return
        if self._call.phase is CallPhase.CLOSING:
            # Our BYE is on its way: a crossing BYE is fine, anything else is too late.
            self._reply(entry, request, 200 if method == "BYE" else 481, now)
            return
        if dialog is not self._call.dialog and method not in ("OPTIONS", "INFO"):
            self._reply(entry, request, 481, now)  # early dialog: no session to change or end yet
            return
        if method != "BYE":
            unsupported = sorted(option_tags(request, "Require") - {"timer"})
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
        self._call.end(CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE, None, None))

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
            self._call.emit(DtmfReceived(dtmf.digit, dtmf.duration_ms))

    def _offer_pending(self) -> bool:
        """An offer of ours awaits its answer (RFC 3261 14.2 / RFC 6337: answer 491)."""
        return self._call.refreshing or (self._pending_ack is not None and self._pending_ack.offer is not None)

    def _session_request_checks(
        self, entry: _ServerEntry, request: SipRequest, now: float
    ) -> tuple[bool, tuple[int, str | None] | None]:
        """Checks shared by re-INVITE and UPDATE; (False, _) when a response was already sent."""
        try:
            offered = session_expires(request)
        except SipHeaderError as exc:
            self._reply(entry, request, exc.status, now, reason="Bad Session-Expires")
            return False, None
        min_se = self._session.min_se
        if offered is not None and offered[0] < min_se:
            self._reply(entry, request, 422, now, headers=[("Min-SE", str(min_se))])
            return False, None
        if request.body.strip() and request.content_type != SDP:
            self._reply(entry, request, 415, now, headers=[("Accept", SDP)])
            return False, None
        return True, offered

    def _answer(self, entry: _ServerEntry, request: SipRequest, sdp: bytes, now: float) -> NegotiatedMedia | None:
        """Answer their offer with our media; None when an error response was sent instead."""
        try:
            return self._sdp.answer(sdp)
        except SdpError as exc:
            self._refuse_offer(entry, request, exc, now)
            return None

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

    def _on_reinvite(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        if self._offer_pending():
            self._reply(entry, request, 491, now)
            return
        ok, offered = self._session_request_checks(entry, request, now)
        if not ok:
            return
        sdp = sdp_body(request)
        media: NegotiatedMedia | None = None
        our_offer: SessionDescription | None = None
        if sdp is not None:
            media = self._answer(entry, request, sdp, now)
            if media is None:
                return
        else:
            # An offerless re-INVITE: we offer in the 2xx, the ACK brings the answer.
            our_offer = self._sdp.new_offer()
        dialog = self._call.dialog
        assert dialog is not None
        dialog.refresh_target(request)
        self._call.report_leg()
        headers = [("Allow", ALLOW), ("Supported", SUPPORTED), *self._call.peer_refreshed(request, offered, now)]
        response = self._reply(
            entry, request, 200, now, headers=headers, body=self._sdp.last_bytes, content_type=SDP
        )
        self._pending_ack = _PendingAck(
            request.cseq.number, bytes(response), entry.source, entry.transport, self._t1, our_offer
        )
        if entry.transport == "udp":
            self._timers[CallTimer.RETRANSMIT_2XX] = now + self._t1
        self._timers[CallTimer.ACK_WAIT] = now + 64 * self._t1
        if media is not None:
            self._call.media_changed(media)

    def _on_update(self, entry: _ServerEntry, request: SipRequest, now: float) -> None:
        sdp = sdp_body(request)
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
        dialog = self._call.dialog
        assert dialog is not None
        dialog.refresh_target(request)
        self._call.report_leg()
        headers = [("Allow", ALLOW), ("Supported", SUPPORTED), *self._call.peer_refreshed(request, offered, now)]
        if media is not None:
            self._reply(entry, request, 200, now, headers=headers, body=self._sdp.last_bytes, content_type=SDP)
            self._call.media_changed(media)
        else:
            self._reply(entry, request, 200, now, headers=headers)

    def _on_ack(self, ack: SipRequest, now: float) -> None:
        pending = self._pending_ack
        if pending is None or ack.cseq.number != pending.cseq:
            return
        self._pending_ack = None
        self._timers.pop(CallTimer.RETRANSMIT_2XX, None)
        self._timers.pop(CallTimer.ACK_WAIT, None)
        if pending.offer is None or self._call.phase is not CallPhase.CONFIRMED:
            return
        sdp = sdp_body(ack)
        media = negotiate(pending.offer, sdp) if sdp is not None else None
        if media is None:
            self._call.close(
                CallOutcome(CallStatus.FAILED, HangupCause.CODEC_MISMATCH, HangupSide.LOCAL, 488, reason_phrase(488)),
                now,
            )
            return
        self._call.media_changed(media)

    _REQUEST_HANDLERS: ClassVar[dict[str, Callable[[InDialogServer, _ServerEntry, SipRequest, float], None]]] = {
        "BYE": _on_bye,
        "OPTIONS": _on_options,
        "INFO": _on_info,
        "INVITE": _on_reinvite,
        "UPDATE": _on_update,
    }
