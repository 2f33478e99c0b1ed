"""One outbound call: the INVITE, CANCEL, BYE and session refreshes we send (sans-I/O).

``SipUserAgent`` (``gateway.sip.useragent``) owns the calls and routes bytes to them; the
shell never uses ``OutboundCall`` directly. A call's parts:

* its phase (``call_state``: ``CallPhase`` and the table of moves, changed only here);
* its client transactions: the INVITE (with its retries, ``request_retry``), CANCEL, BYE
  and the session refresh re-INVITE (RFC 4028 state in ``session_timer``);
* our side of its SDP (``call_sdp``);
* the far end's requests within its dialog (``in_dialog.InDialogServer``).

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
  leaves the expiry running. A 401/407 or 422 is retried like the INVITE's.
* A refresh re-INVITE that got a 1xx but no final within 64*T1 (a 1xx stops Timer B)
  is CANCELled; at Ended, INVITE transactions stuck like that are abandoned so the
  call can still be Released.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.sip.call_sdp import SDP, LocalSdp, negotiate, sdp_body
from gateway.sip.call_state import CallPhase, CallTimer, transition
from gateway.sip.dialog import Address, Dialog, DialogError, Transport
from gateway.sip.digest import DigestSession
from gateway.sip.errors import SipHeaderError
from gateway.sip.headers import Headers, NameAddr, canonical_name
from gateway.sip.in_dialog import InDialogServer
from gateway.sip.message import (
    SipRequest,
    SipResponse,
    make_cancel,
    make_request,
    new_call_id,
    new_tag,
    reason_phrase,
)
from gateway.sip.request_retry import RetryPolicy
from gateway.sip.sdp import NegotiatedMedia, SdpError
from gateway.sip.session_timer import DIALOG_GONE, SessionTimer
from gateway.sip.snapshot import LegSnapshot
from gateway.sip.transaction import (
    ClientKey,
    Deliver,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Send,
    Terminated,
    Timeout,
    TransactionState,
    TransportFailure,
    transaction_key_for_response,
)
from gateway.sip.ua_events import (
    ALLOW,
    SUPPORTED,
    Answered,
    CallEvent,
    CallEventBody,
    CallSettings,
    Ended,
    LegUpdated,
    MediaUpdated,
    OutboundCallParams,
    Released,
    Ringing,
    Transmit,
    Trying,
    UaOutput,
    UaStats,
    UaUsageError,
)
from gateway.sip.uri import Params, format_host

__all__ = ["MAX_EARLY_DIALOGS", "OutboundCall"]

CONTACT_USER = "gw"
# Headers the user agent writes itself; extra_headers may not replace them.
_RESERVED_HEADERS = frozenset(
    {"via", "from", "to", "call-id", "cseq", "max-forwards", "contact", "content-length", "content-type", "route"}
    | {"authorization", "proxy-authorization", "session-expires", "min-se"}
)

# Distinct To tags in provisional responses we keep early dialogs for (forking fan-out).
MAX_EARLY_DIALOGS = 16


class _Purpose(enum.Enum):
    INVITE = "initial INVITE"
    CANCEL = "CANCEL"
    BYE = "BYE of the call"
    FORK_BYE = "BYE of an extra forked dialog"
    REFRESH = "session refresh re-INVITE"


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
    provisional: bool = False


def _check_extra_headers(headers: Iterable[tuple[str, str]]) -> None:
    scratch = Headers()
    for name, value in headers:
        if canonical_name(name).lower() in _RESERVED_HEADERS:
            raise UaUsageError(f"extra header {name!r} is written by the user agent itself")
        try:
            scratch.add(name, value)
        except SipHeaderError as exc:
            raise UaUsageError(f"invalid extra header {name!r}: {exc.reason}") from exc


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
        self._session = SessionTimer(params.session_expires, params.min_se)
        try:
            self._sdp = LocalSdp(params.local_media)
        except SdpError as exc:
            raise UaUsageError(f"local media cannot be offered: {exc}") from exc
        digest = (
            DigestSession(params.credentials, max_attempts=max(1, params.max_auth_attempts))
            if params.credentials is not None
            else None
        )
        self._retries = RetryPolicy(digest, params.max_auth_attempts, self._session)

        self._phase = CallPhase.CALLING
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
        self._refresh: _ClientEntry | None = None
        self._refresh_pending = False
        self._client: dict[ClientKey, _ClientEntry] = {}
        self._timers: dict[CallTimer, float] = {}
        self._snapshot: LegSnapshot | None = None
        self._in_dialog = InDialogServer(
            self, settings, stats, self._timers, self._sdp, self._session, self._contact
        )

    # ------------------------------------------------------------------ driven by the UA

    @property
    def phase(self) -> CallPhase:
        return self._phase

    @property
    def ended(self) -> bool:
        return self._outcome is not None

    @property
    def outcome(self) -> CallOutcome | None:
        return self._outcome

    def start(self, now: float) -> None:
        self._stats.calls_placed += 1
        self.emit(Trying(self.sip_call_id))
        self._timers[CallTimer.RING] = now + self.params.ring_timeout
        self._retries.start()
        self._send_invite(now)

    def hangup(self, cause: HangupCause, now: float) -> None:
        if self._outcome is None and self._closing is None:
            if self._dialog is not None:
                self.close(CallOutcome(CallStatus.COMPLETED, cause, HangupSide.LOCAL, None, None), now)
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
            return self._in_dialog.receive(request, source, transport, now)
        finally:
            self._maybe_release()

    def transport_error(self, destination: Address, transport: Transport, now: float) -> None:
        for entry in list(self._client.values()):
            hit = entry.destination == destination and entry.transport == transport
            if hit and self._client.get(entry.tx.key) is entry:
                entry.tx.transport_error(now)
                self._drain_client(entry, now)
        self._in_dialog.transport_error(destination, transport, now)
        self._maybe_release()

    def on_timer(self, now: float) -> None:
        for entry in list(self._client.values()):
            deadline = entry.tx.next_deadline()
            if deadline is not None and deadline <= now and self._client.get(entry.tx.key) is entry:
                entry.tx.on_timer(now)
                self._drain_client(entry, now)
        self._in_dialog.on_timer(now)
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
        deadlines.extend(self._in_dialog.deadlines())
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ for InDialogServer (DialogCall)

    @property
    def dialog(self) -> Dialog | None:
        return self._dialog

    @property
    def refreshing(self) -> bool:
        return self._refresh_pending

    def match_dialog(self, request: SipRequest) -> Dialog | None:
        if self._dialog is not None:
            return self._dialog if self._dialog.matches(request) else None
        early = self._early.get(request.from_tag or "")
        return early if early is not None and early.matches(request) else None

    def emit(self, body: CallEventBody) -> None:
        self._outputs.append(CallEvent(self.call_ref, body))

    def transmit(self, data: bytes, destination: Address, transport: Transport) -> None:
        self._stats.sent += 1
        self._outputs.append(Transmit(data, destination, transport))

    def report_leg(self) -> None:
        """LegUpdated when what ending the call takes has changed (new INVITE branch, dialog
        confirmed, local CSeq or remote target moved)."""
        if self._dialog is not None and self._phase is CallPhase.CONFIRMED:
            snapshot = LegSnapshot.confirmed(self._dialog, self.params.destination, self.params.transport)
        elif self._invite is not None and self._dialog is None:
            invite = self._invite
            snapshot = LegSnapshot.inviting(invite.tx.request, invite.destination, invite.transport)
        else:
            return
        if snapshot != self._snapshot:
            self._snapshot = snapshot
            self.emit(LegUpdated(snapshot))

    def media_changed(self, media: NegotiatedMedia) -> None:
        # Carriers refresh with unchanged SDP every few minutes: only real changes are news.
        if media != self.media:
            self.media = media
            self.emit(MediaUpdated(media))

    def peer_refreshed(
        self, request: SipRequest, offered: tuple[int, str | None] | None, now: float
    ) -> list[tuple[str, str]]:
        headers = self._session.on_peer_refresh(request, offered)
        self._arm_session(now)  # without a timer requested, an accepted request still shows liveness
        return headers

    def end(self, outcome: CallOutcome) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        self._enter(CallPhase.ENDED)
        self._timers.clear()
        self._in_dialog.stop_waiting_for_ack()
        for key, entry in list(self._client.items()):
            # An INVITE that got a 1xx has no timeout of its own (17.1.1.2): stop waiting for it.
            if (
                isinstance(entry.tx, InviteClientTransaction)
                and entry.tx.state is TransactionState.PROCEEDING
            ):
                del self._client[key]
        self.emit(Ended(outcome))

    def close(self, outcome: CallOutcome, now: float) -> None:
        """End the confirmed dialog with a BYE; Ended follows when the BYE completes."""
        if self._closing is not None or self._outcome is not None or self._dialog is None:
            return
        self._closing = outcome
        self._enter(CallPhase.CLOSING)
        self._timers.clear()
        self._in_dialog.stop_waiting_for_ack()
        self._retries.start()
        self._send_bye(self._dialog, _Purpose.BYE, now)

    # ------------------------------------------------------------------ phase and helpers

    def _enter(self, phase: CallPhase) -> None:
        """The one way the phase changes: only along the table of ``call_state``."""
        self._phase = transition(self._phase, phase)

    def _hop(self, dialog: Dialog) -> tuple[Address, Transport]:
        return self._settings.next_hop(dialog, self.params.destination, self.params.transport)

    def _maybe_release(self) -> None:
        if self.released or self._outcome is None or self._client or self._timers or not self._in_dialog.idle:
            return
        self.released = True
        self.emit(Released())

    # ------------------------------------------------------------------ client transactions

    def _send_client(
        self, request: SipRequest, purpose: _Purpose, destination: Address, transport: Transport, now: float
    ) -> _ClientEntry:
        reliable = transport == "tcp"
        tx: InviteClientTransaction | NonInviteClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(request, reliable, self._settings.timers, now)
        else:
            tx = NonInviteClientTransaction(request, reliable, self._settings.timers, now)
        entry = _ClientEntry(tx, purpose, destination, transport)
        self._client[tx.key] = entry
        tx.start(now)
        self._drain_client(entry, now)
        return entry

    def _drain_client(self, entry: _ClientEntry, now: float) -> None:
        for out in entry.tx.pop_outputs():
            if isinstance(out, Send):
                self.transmit(bytes(out.message), entry.destination, entry.transport)
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
                self.transmit(*sent)  # a retransmitted 2xx: the same ACK again (13.2.2.4)
                return
        if entry.purpose is _Purpose.INVITE:
            self._on_invite_response(entry, response, now)
        elif entry.purpose is _Purpose.BYE:
            self._on_bye_response(response, now)
        elif entry.purpose is _Purpose.REFRESH:
            self._on_refresh_response(entry, response, now)

    def _on_client_failure(self, entry: _ClientEntry, status: int, now: float, *, transport_failed: bool) -> None:
        if entry.purpose is _Purpose.INVITE and entry is self._invite:
            if self._intent is not None:
                self.end(self._intent_outcome(None, None))
            elif transport_failed:
                self.end(
                    CallOutcome(CallStatus.FAILED, HangupCause.TRANSPORT_ERROR, HangupSide.REMOTE, 503, reason_phrase(503))
                )
            else:
                self.end(CallOutcome(CallStatus.FAILED, HangupCause.TIMEOUT, HangupSide.REMOTE, 408, reason_phrase(408)))
        elif entry.purpose is _Purpose.BYE:
            self._finish_close()
        elif entry.purpose is _Purpose.REFRESH:
            self._refresh_pending = False
            self._timers.pop(CallTimer.REFRESH_WAIT, None)
            if not transport_failed and self._phase is CallPhase.CONFIRMED:
                self._dialog_gone(status, reason_phrase(status))

    # ------------------------------------------------------------------ the INVITE

    def _send_invite(self, now: float) -> None:
        params = self.params
        uri = params.request_uri.copy()
        headers: list[tuple[str, str]] = [
            ("User-Agent", self._settings.user_agent),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
            *self._session.invite_headers(),
            *self._retries.credentials("INVITE", str(uri), self._sdp.last_bytes),
            *params.extra_headers,
        ]
        request = make_request(
            "INVITE",
            uri,
            from_=self._local_from,
            to=NameAddr(uri=params.to_uri.copy()),
            call_id=self.sip_call_id,
            cseq=self._cseq,
            via=self._settings.via(params.transport),
            contact=self._contact,
            headers=headers,
            body=self._sdp.last_bytes,
            content_type=SDP,
        )
        self._invite = self._send_client(request, _Purpose.INVITE, params.destination, params.transport, now)
        self.report_leg()

    def _on_invite_response(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        if response.status < 200:
            if entry is self._invite and self._outcome is None:
                self._on_provisional(entry, response, now)
        elif response.status < 300:
            self._on_invite_success(entry, response, now)
        elif entry is self._invite:
            self._on_invite_failure(response, now)

    def _on_provisional(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        entry.provisional = True
        if self._phase is CallPhase.CALLING:
            self._enter(CallPhase.EARLY)
        tag = response.to_tag
        early_media: NegotiatedMedia | None = None
        sdp = sdp_body(response)
        if sdp is not None:
            early_media = negotiate(self._sdp.offer, sdp)
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
                self.emit(Ringing(response.status, response.reason, early_media))

    def _on_invite_success(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        tag = response.to_tag or ""
        try:
            dialog = Dialog.from_uac_response(entry.tx.request, response)
        except DialogError:
            return
        self._send_ack(dialog, entry.tx.request)
        if self._dialog is not None or self._outcome is not None:
            # A second dialog from a forking proxy (or a call already over): we keep one.
            self._send_bye(dialog, _Purpose.FORK_BYE, now)
            return
        self._dialog = dialog
        self._early.clear()
        self._timers.pop(CallTimer.RING, None)
        self._timers.pop(CallTimer.CANCEL_WAIT, None)
        self._retries.succeeded()
        if self._intent is not None:
            # The 2xx crossed our CANCEL: the call is accepted and hung up at once.
            self.close(self._intent_outcome(None, None), now)
            return
        sdp = sdp_body(response) or self._early_sdp.get(tag)
        media = negotiate(self._sdp.offer, sdp) if sdp is not None else None
        if media is None:
            self.close(
                CallOutcome(CallStatus.FAILED, HangupCause.CODEC_MISMATCH, HangupSide.LOCAL, 488, reason_phrase(488)),
                now,
            )
            return
        self._enter(CallPhase.CONFIRMED)
        self.media = media
        self.report_leg()
        self.emit(Answered(media, response.status))
        self._apply_session_response(response, now)

    def _on_invite_failure(self, response: SipResponse, now: float) -> None:
        status, reason = response.status, response.reason
        if self._intent is not None:
            if self._cancel_sent or status in (401, 407, 422, 487):
                self.end(self._intent_outcome(status, reason))
                return
        elif self._retries.retry(response):
            self._cseq += 1
            self._send_invite(now)  # a new transaction: new CSeq and branch
            return
        result, cause = _FINAL_OUTCOMES.get(status, (CallStatus.FAILED, HangupCause.REJECTED))
        self.end(CallOutcome(result, cause, HangupSide.REMOTE, status, reason))

    def _intent_outcome(self, status: int | None, reason: str | None) -> CallOutcome:
        assert self._intent is not None
        return CallOutcome(self._intent.result, self._intent.cause, HangupSide.LOCAL, status, reason)

    # ------------------------------------------------------------------ CANCEL

    def _request_cancel(self, intent: _Intent, now: float) -> None:
        if self._intent is not None or self._dialog is not None or self._outcome is not None:
            return
        self._intent = intent
        self._timers.pop(CallTimer.RING, None)
        if self._invite is not None and self._invite.provisional:
            self._send_cancel(now)

    def _send_cancel(self, now: float) -> None:
        invite = self._invite
        if invite is None or self._cancel_sent:
            return
        self._cancel_sent = True
        self._enter(CallPhase.CANCELLING)
        self._timers[CallTimer.CANCEL_WAIT] = now + 64 * self._t1
        cancel = make_cancel(invite.tx.request)
        self._send_client(cancel, _Purpose.CANCEL, invite.destination, invite.transport, now)

    def _ring_timeout(self, now: float) -> None:
        self._request_cancel(_Intent(CallStatus.NO_ANSWER, HangupCause.RING_TIMEOUT), now)

    def _cancel_wait_expired(self, now: float) -> None:
        invite = self._invite
        if invite is not None and self._client.get(invite.tx.key) is invite:
            # The far end never ended the INVITE: abandon its transaction.
            del self._client[invite.tx.key]
        if self._dialog is None:
            self.end(self._intent_outcome(None, None))

    # ------------------------------------------------------------------ requests within the dialog

    def _send_ack(self, dialog: Dialog, invite: SipRequest) -> None:
        destination, transport = self._hop(dialog)
        ack = dialog.ack(invite, via=self._settings.via(transport))
        data = bytes(ack)
        self._acks[(dialog.remote_tag, invite.cseq.number)] = (data, destination, transport)
        self.transmit(data, destination, transport)

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
        authorize: bool = False,
    ) -> _ClientEntry:
        destination, transport = self._hop(dialog)
        all_headers = list(headers)
        if authorize:
            request_uri, _ = dialog.request_target()
            all_headers.extend(self._retries.credentials(method, str(request_uri), body))
        request = dialog.new_request(
            method,
            via=self._settings.via(transport),
            contact=self._contact if method == "INVITE" else None,
            headers=all_headers,
            body=body,
            content_type=content_type,
        )
        return self._send_client(request, purpose, destination, transport, now)

    def _send_bye(self, dialog: Dialog, purpose: _Purpose, now: float) -> None:
        # Only the call's own BYE answers a challenge; a forked dialog's is sent once, as is.
        authorize = purpose is _Purpose.BYE and self._retries.challenged
        headers = [("User-Agent", self._settings.user_agent)]
        self._send_in_dialog(dialog, "BYE", purpose, now, headers=headers, authorize=authorize)

    def _on_bye_response(self, response: SipResponse, now: float) -> None:
        if response.status < 200:
            return
        if self._dialog is not None and self._retries.retry(response):
            self._send_bye(self._dialog, _Purpose.BYE, now)
            return
        self._finish_close()

    def _finish_close(self) -> None:
        if self._closing is not None:
            self.end(self._closing)

    def _dialog_gone(self, status: int, reason: str) -> None:
        self.end(CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE, status, reason))

    # ------------------------------------------------------------------ session refresh (RFC 4028)

    def _apply_session_response(self, response: SipResponse, now: float) -> None:
        """A 2xx to our INVITE or refresh sets the session timer (none without Session-Expires)."""
        self._session.on_answer(response)
        if self._session.agreed is None:
            self._timers.pop(CallTimer.SESSION_REFRESH, None)
            self._timers.pop(CallTimer.SESSION_EXPIRY, None)
            return
        self._arm_session(now)

    def _arm_session(self, now: float) -> None:
        deadlines = self._session.deadlines(now)
        if deadlines is None or self._phase is not CallPhase.CONFIRMED:
            return
        refresh_at, expiry_at = deadlines
        if refresh_at is not None:
            self._timers[CallTimer.SESSION_REFRESH] = refresh_at
        else:
            self._timers.pop(CallTimer.SESSION_REFRESH, None)
        self._timers[CallTimer.SESSION_EXPIRY] = expiry_at

    def _refresh_due(self, now: float) -> None:
        if self._phase is not CallPhase.CONFIRMED or self._session.agreed is None:
            return
        if self._refresh_pending or self._in_dialog.awaiting_ack:
            # 14.1: no new INVITE while another one is in progress in either direction.
            self._timers[CallTimer.SESSION_REFRESH] = now + 4 * self._t1
            return
        self._retries.start()
        self._send_refresh(now)

    def _send_refresh(self, now: float) -> None:
        assert self._dialog is not None
        headers = [
            ("User-Agent", self._settings.user_agent),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
            *self._session.refresh_headers(),
        ]
        self._refresh_pending = True
        self._timers[CallTimer.REFRESH_WAIT] = now + 64 * self._t1
        self._refresh = self._send_in_dialog(
            self._dialog,
            "INVITE",
            _Purpose.REFRESH,
            now,
            headers=headers,
            body=self._sdp.last_bytes,
            content_type=SDP,
            authorize=self._retries.challenged,
        )
        self.report_leg()

    def _on_refresh_response(self, entry: _ClientEntry, response: SipResponse, now: float) -> None:
        status = response.status
        if status < 200:
            return
        self._refresh_pending = False
        self._timers.pop(CallTimer.REFRESH_WAIT, None)
        dialog = self._dialog
        if status < 300:
            if dialog is None:
                return
            self._send_ack(dialog, entry.tx.request)
            if self._phase is not CallPhase.CONFIRMED:
                return
            dialog.refresh_target(response)
            self.report_leg()
            sdp = sdp_body(response)
            if sdp is not None:
                media = negotiate(self._sdp.last, sdp)
                if media is not None:
                    self.media_changed(media)
            self._apply_session_response(response, now)
            return
        if self._phase is not CallPhase.CONFIRMED or self._session.agreed is None:
            return
        if self._retries.retry(response):
            self._send_refresh(now)
        elif status in DIALOG_GONE:
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
        if self._phase is CallPhase.CONFIRMED:
            self.close(
                CallOutcome(CallStatus.COMPLETED, HangupCause.SESSION_EXPIRED, HangupSide.LOCAL, None, None), now
            )

    # ------------------------------------------------------------------ timers

    def _retransmit_2xx(self, now: float) -> None:
        self._in_dialog.retransmit_2xx(now)

    def _ack_wait_expired(self, now: float) -> None:
        self._in_dialog.ack_wait_expired(now)

    _TIMER_HANDLERS: ClassVar[dict[CallTimer, Callable[[OutboundCall, float], None]]] = {
        CallTimer.RING: _ring_timeout,
        CallTimer.CANCEL_WAIT: _cancel_wait_expired,
        CallTimer.SESSION_REFRESH: _refresh_due,
        CallTimer.SESSION_EXPIRY: _session_expired,
        CallTimer.REFRESH_WAIT: _refresh_unanswered,
        CallTimer.RETRANSMIT_2XX: _retransmit_2xx,
        CallTimer.ACK_WAIT: _ack_wait_expired,
    }
