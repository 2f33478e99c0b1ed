"""Ending a call from a process that did not place it: the carrier leg of a crashed node (sans-I/O).

While a call lives, its ``OutboundCall`` reports a ``LegSnapshot`` whenever what it would take
to end the call changes: the INVITE it sent (for a CANCEL while the call rings), then the
confirmed dialog (for a BYE; again when its CSeq or remote target move). The gateway stores
the latest with the call. After a crash, the node that settles the call hands the snapshot to
``SipUserAgent.release``, which runs a ``LegRelease``:

    ringing    CANCEL with the INVITE's own Via (RFC 3261 9.1: a CANCEL matches its INVITE by
               branch and sent-by), then ACK the INVITE's final response (17.1.1.3) if it
               reaches us; a 2xx that crossed the CANCEL is ACKed and ended with a BYE.
    confirmed  BYE in the dialog (12.2.1.1), with the next local CSeq; a 401/407 is answered
               once with the trunk's credentials.

It emits ``Ended`` when the CANCEL or BYE completes (any final response, timeout or transport
error: there is nobody else to try), and ``Released`` once nothing is left to absorb (an INVITE
response may still arrive up to 64*T1 after a CANCEL).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.sip.dialog import Dialog, DialogError
from gateway.sip.digest import DigestCredentials, DigestSession
from gateway.sip.message import (
    SipRequest,
    SipResponse,
    make_ack,
    make_cancel,
    make_response,
)
from gateway.sip.request_retry import RetryPolicy
from gateway.sip.snapshot import LegSnapshot
from gateway.sip.transaction import (
    ClientKey,
    Deliver,
    NonInviteClientTransaction,
    Send,
    Terminated,
    Timeout,
    TransportFailure,
    transaction_key_for_response,
)
from gateway.sip.ua_events import (
    Address,
    CallEvent,
    CallEventBody,
    CallSettings,
    Ended,
    Released,
    Transmit,
    Transport,
    UaOutput,
    UaStats,
)

__all__ = ["LegRelease"]

@dataclass(eq=False)
class _Request:
    tx: NonInviteClientTransaction
    destination: Address
    transport: Transport


class LegRelease:
    """Ends one orphaned call (see the module docstring); driven by ``SipUserAgent``."""

    def __init__(
        self,
        call_ref: str,
        snapshot: LegSnapshot,
        credentials: DigestCredentials | None,
        settings: CallSettings,
        stats: UaStats,
        outputs: list[UaOutput],
        now: float,
    ) -> None:
        self.call_ref = call_ref
        self.sip_call_id = snapshot.call_id
        self._snapshot = snapshot
        self._settings = settings
        self._stats = stats
        self._outputs = outputs
        digest = DigestSession(credentials, max_attempts=1) if credentials is not None else None
        self._retries = RetryPolicy(digest, max_auth_attempts=1)
        self._client: dict[ClientKey, _Request] = {}
        self._invite: SipRequest | None = None
        self._dialog: Dialog | None = None
        self._acks: dict[str, bytes] = {}  # To tag -> our ACK of the INVITE's final response
        self._linger_until: float | None = None
        self.ended = False
        self.released = False
        self._start(now)

    # ------------------------------------------------------------------ driven by the UA

    def hangup(self, cause: HangupCause, now: float) -> None:
        """Already ending: nothing more to do."""

    def receive_response(self, response: SipResponse, now: float) -> bool:
        entry = self._client.get(transaction_key_for_response(response))
        if entry is not None:
            entry.tx.receive(response, now)
            self._drain(entry, now)
        elif self._invite is not None and response.cseq.method == "INVITE" and response.status >= 200:
            self._invite_final(response, now)
        else:
            return False
        self._maybe_release(now)
        return True

    def receive_request(self, request: SipRequest, source: Address, transport: Transport, now: float) -> bool:
        dialog = self._dialog
        if dialog is None or not dialog.matches(request):
            return False
        if request.method != "ACK":
            # The far end ends or probes the dialog we are ending: a BYE is welcome, the rest too late.
            status = 200 if request.method == "BYE" else 481
            response = make_response(request, status, headers=[("Server", self._settings.user_agent)])
            self._transmit(bytes(response), source, transport)
            if request.method == "BYE":
                self._end(None, None)
        self._maybe_release(now)
        return True

    def transport_error(self, destination: Address, transport: Transport, now: float) -> None:
        for entry in list(self._client.values()):
            if entry.destination == destination and entry.transport == transport:
                entry.tx.transport_error(now)
                self._drain(entry, now)
        self._maybe_release(now)

    def on_timer(self, now: float) -> None:
        for entry in list(self._client.values()):
            deadline = entry.tx.next_deadline()
            if deadline is not None and deadline <= now:
                entry.tx.on_timer(now)
                self._drain(entry, now)
        if self._linger_until is not None and now >= self._linger_until:
            self._linger_until = None
        self._maybe_release(now)

    def next_deadline(self) -> float | None:
        deadlines = [d for e in self._client.values() if (d := e.tx.next_deadline()) is not None]
        if self._linger_until is not None:
            deadlines.append(self._linger_until)
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ internals

    def _start(self, now: float) -> None:
        snapshot = self._snapshot
        if snapshot.phase == "confirmed":
            self._dialog = snapshot.dialog_state()
            self._send_bye(now)
            return
        self._invite = snapshot.invite_request()
        # An INVITE response (the 487, or a 2xx that crossed the CANCEL) may come up to 64*T1 later.
        self._linger_until = now + 64 * self._settings.timers.t1
        cancel = make_cancel(self._invite)
        self._send(cancel, snapshot.destination, snapshot.transport, now)

    def _hop(self, dialog: Dialog) -> tuple[Address, Transport]:
        return self._settings.next_hop(dialog, self._snapshot.destination, self._snapshot.transport)

    def _send_bye(self, now: float) -> None:
        dialog = self._dialog
        assert dialog is not None
        destination, transport = self._hop(dialog)
        headers = [("User-Agent", self._settings.user_agent)]
        if self._retries.challenged:
            request_uri, _ = dialog.request_target()
            headers.extend(self._retries.credentials("BYE", str(request_uri), b""))
        bye = dialog.new_request("BYE", via=self._settings.via(transport), headers=headers)
        self._send(bye, destination, transport, now)

    def _send(self, request: SipRequest, destination: Address, transport: Transport, now: float) -> _Request:
        tx = NonInviteClientTransaction(request, transport == "tcp", self._settings.timers, now)
        entry = _Request(tx, destination, transport)
        self._client[tx.key] = entry
        tx.start(now)
        self._drain(entry, now)
        return entry

    def _drain(self, entry: _Request, now: float) -> None:
        for out in entry.tx.pop_outputs():
            if isinstance(out, Send):
                self._transmit(bytes(out.message), entry.destination, entry.transport)
            elif isinstance(out, Deliver) and isinstance(out.message, SipResponse):
                self._final(entry, out.message, now)
            elif isinstance(out, Timeout | TransportFailure):
                self._end(None, None)
            elif isinstance(out, Terminated) and self._client.get(entry.tx.key) is entry:
                del self._client[entry.tx.key]

    def _final(self, entry: _Request, response: SipResponse, now: float) -> None:
        if response.status < 200:
            return
        method = entry.tx.request.method
        if method == "BYE" and self._retries.retry(response):  # one digest retry at most
            self._send_bye(now)
            return
        if method == "BYE" or self._dialog is None:
            # The BYE completed; or the CANCEL did, and no 2xx made a dialog meanwhile.
            self._end(response.status, response.reason)

    def _invite_final(self, response: SipResponse, now: float) -> None:
        assert self._invite is not None
        tag = response.to_tag or ""
        sent = self._acks.get(tag)
        if sent is not None:  # a retransmission: the same ACK again
            self._transmit(sent, self._snapshot.destination, self._snapshot.transport)
            return
        if response.status >= 300:
            ack = bytes(make_ack(self._invite, response))
            self._acks[tag] = ack
            self._transmit(ack, self._snapshot.destination, self._snapshot.transport)
            return
        # Answered while nobody was there (or it crossed our CANCEL): ACK, then BYE (15.1.1).
        try:
            dialog = Dialog.from_uac_response(self._invite, response)
        except DialogError:
            return
        destination, transport = self._hop(dialog)
        ack = bytes(dialog.ack(self._invite, via=self._settings.via(transport)))
        self._acks[tag] = ack
        self._transmit(ack, destination, transport)
        if self._dialog is None:
            self._dialog = dialog
            self._send_bye(now)

    def _end(self, status: int | None, reason: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        outcome = CallOutcome(CallStatus.FAILED, HangupCause.GATEWAY_RESTART, HangupSide.LOCAL, status, reason)
        self._emit(Ended(outcome))

    def _maybe_release(self, now: float) -> None:
        if self.released or not self.ended or self._client or self._linger_until is not None:
            return
        self.released = True
        self._emit(Released())

    def _emit(self, body: CallEventBody) -> None:
        self._outputs.append(CallEvent(self.call_ref, body))

    def _transmit(self, data: bytes, destination: Address, transport: Transport) -> None:
        self._stats.sent += 1
        self._outputs.append(Transmit(data, destination, transport))
