"""Sans-I/O SIP transactions: RFC 3261 section 17 with the RFC 6026 Accepted states.

The shell owns sockets and the clock. It creates a transaction, calls
``start(now)``, feeds it events, drains ``pop_outputs()`` after every call and
calls ``on_timer(now)`` once ``now >= next_deadline()``.

Outputs
-------
``Output = Send | Deliver | Timeout | TransportFailure | Terminated`` (frozen dataclasses)

* ``Send(message)`` - hand ``message`` to the transport (request, ACK or response).
* ``Deliver(message)`` - give ``message`` to the transaction user (TU): responses
  for client transactions; for server transactions the initial request (emitted
  by ``start``) and, in the INVITE Accepted state, a matching ACK.
* ``Timeout(timer)`` - Timer B, F or H expired; the TU treats it as a 408.
* ``TransportFailure()`` - after ``transport_error``; the TU treats it as a 503.
* ``Terminated()`` - last output of a transaction; the shell forgets it.
  Always preceded by ``Timeout``/``TransportFailure`` when that was the cause.

Transactions
------------
All four share this API (``now`` is a monotonic time in seconds)::

    tx = InviteClientTransaction(request, reliable, config=TimerConfig(), now=0.0)
    tx.start(now)                  # client: sends the request; server: delivers it
    tx.receive(message, now)       # client: a response; server: a request retransmission or ACK
    tx.send_response(resp, now)   # server only: a response from the TU
    tx.on_timer(now)               # fire every timer whose deadline is <= now
    tx.transport_error(now)        # the transport failed to send for this transaction
    tx.pop_outputs() -> list[Output]
    tx.next_deadline() -> float | None
    tx.state -> TransactionState   # calling, trying, proceeding, completed, accepted, confirmed, terminated
    tx.key                         # ClientKey or ServerKey, see matching below
    tx.request                     # the request that created the transaction
    tx.last_response               # most recent response received (client) or sent (server)

``reliable`` is True for TCP/TLS: no retransmission timers (A, E, G) run and
D, I, J, K are zero, so those states are left at once. ``InviteServerTransaction``
takes ``trying_delay: float | None = 0.0``: 0 sends ``100 Trying`` from
``start``, a positive value sends it only if the TU has not responded by then
(the 200 ms rule of 17.2.1), ``None`` never.

Events that a state does not handle are absorbed silently (e.g. a 1xx after
a final response), as are all events after termination. Feeding a client
transaction a response whose key does not match, a server transaction a
request of another method, or calling ``start`` twice raises
``TransactionUsageError``.

State tables (event -> action, next state)
------------------------------------------
INVITE client (17.1.1, RFC 6026 7.2)::

    Calling     Timer A        retransmit INVITE, A *= 2 (no cap)     Calling
    Calling     Timer B        Timeout                                Terminated
    Calling     1xx            Deliver; stop A, B                     Proceeding
    Proceeding  1xx            Deliver                                Proceeding
    Calling/Proceeding 2xx     Deliver; start M                       Accepted
    Calling/Proceeding 300-699 Send ACK, Deliver; start D             Completed
    Completed   300-699        Send ACK again                         Completed
    Completed   Timer D        -                                      Terminated
    Accepted    2xx            Deliver (the dialog ACKs each 2xx)     Accepted
    Accepted    Timer M        -                                      Terminated
    any but Accepted  transport error  TransportFailure               Terminated

non-INVITE client (17.1.2)::

    Trying      Timer E        retransmit, E = min(2E, T2)            Trying
    Proceeding  Timer E        retransmit, E = T2                     Proceeding
    Trying/Proceeding 1xx      Deliver                                Proceeding
    Trying/Proceeding 200-699  Deliver; start K                       Completed
    Trying/Proceeding Timer F  Timeout                                Terminated
    Completed   Timer K        -                                      Terminated
    any         transport error  TransportFailure                     Terminated

INVITE server (17.2.1, RFC 6026 7.1)::

    (start)     -              Deliver INVITE; 100 Trying per trying_delay   Proceeding
    Proceeding  INVITE         resend last provisional (or 100)       Proceeding
    Proceeding  1xx from TU    Send                                   Proceeding
    Proceeding  2xx from TU    Send; start L                          Accepted
    Proceeding  300-699 from TU  Send; start G (UDP), H               Completed
    Completed   INVITE         resend final                           Completed
    Completed   Timer G        resend final, G = min(2G, T2)          Completed
    Completed   ACK            start I                                Confirmed
    Completed   Timer H        Timeout                                Terminated
    Confirmed   Timer I        -                                      Terminated
    Accepted    2xx from TU    Send (TU retransmissions)              Accepted
    Accepted    ACK            Deliver                                Accepted
    Accepted    INVITE         absorbed                               Accepted
    Accepted    Timer L        -                                      Terminated
    Proceeding/Completed  transport error  TransportFailure           Terminated
    Accepted    transport error  TransportFailure (TU decides)        Accepted

non-INVITE server (17.2.2)::

    (start)     -              Deliver request                        Trying
    Trying      1xx from TU    Send                                   Proceeding
    Proceeding  1xx from TU    Send                                   Proceeding
    Trying/Proceeding 200-699 from TU  Send; start J                  Completed
    Proceeding  request        resend last provisional                Proceeding
    Completed   request        resend final                           Completed
    Completed   Timer J        -                                      Terminated
    any         transport error  TransportFailure                     Terminated

Matching (17.1.3, 17.2.3)
-------------------------
* ``ClientKey = tuple[str, str]`` - (top Via branch, CSeq method).
  ``transaction_key_for_response(resp) -> ClientKey``; a client transaction's
  ``key`` is ``(branch of its request, its method)``.
* ``ServerKey = tuple[str, str, str]`` - (branch, sent-by with lower-case host,
  method with ACK mapped to INVITE). ``server_key_for_request(req) -> ServerKey``.
  For RFC 2543 requests (branch missing or without the ``z9hG4bK`` cookie) the
  first element is a synthetic ``"rfc2543|..."`` string built from the
  Request-URI, From tag, Call-ID, CSeq number and top Via, so retransmissions
  and the ACK for a non-2xx response map to the same key (the To tag check of
  17.2.3 is not applied).
* ``cancel_target_key(cancel) -> ServerKey`` - key of the INVITE server
  transaction a CANCEL refers to (9.2).
All key functions raise ``SipHeaderError`` if Via or CSeq is missing or malformed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.sip.errors import TransactionUsageError
from gateway.sip.message import MAGIC_COOKIE, SipMessage, SipRequest, SipResponse, make_ack, make_response
from gateway.sip.timers import TimerConfig, TimerName, TimerSet

__all__ = [
    "ClientKey",
    "Deliver",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Output",
    "Send",
    "ServerKey",
    "Terminated",
    "Timeout",
    "TransactionState",
    "TransportFailure",
    "cancel_target_key",
    "server_key_for_request",
    "transaction_key_for_response",
]

ClientKey = tuple[str, str]
ServerKey = tuple[str, str, str]


class TransactionState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class Send:
    message: SipMessage


@dataclass(frozen=True)
class Deliver:
    message: SipMessage


@dataclass(frozen=True)
class Timeout:
    timer: TimerName | None = None


@dataclass(frozen=True)
class TransportFailure:
    pass


@dataclass(frozen=True)
class Terminated:
    pass


Output = Send | Deliver | Timeout | TransportFailure | Terminated


# --------------------------------------------------------------------------- matching


def transaction_key_for_response(resp: SipResponse) -> ClientKey:
    return (resp.via.branch or "", resp.cseq.method)


def server_key_for_request(req: SipRequest) -> ServerKey:
    via = req.via
    method = "INVITE" if req.method == "ACK" else req.method
    sent_by = via.sent_by.lower()
    branch = via.branch
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        from_tag = req.from_tag or ""
        legacy = "|".join(("rfc2543", str(req.uri), from_tag, req.call_id, str(req.cseq.number), str(via)))
        return (legacy, sent_by, method)
    return (branch, sent_by, method)


def cancel_target_key(cancel: SipRequest) -> ServerKey:
    branch, sent_by, _ = server_key_for_request(cancel)
    return (branch, sent_by, "INVITE")


# --------------------------------------------------------------------------- machinery


class Event(enum.Enum):
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    REQUEST = "request retransmission"
    ACK = "ACK"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "100 Trying timer"


_TIMER_EVENTS = {name: Event[f"TIMER_{name.value}"] for name in TimerName}


def _classify(resp: SipResponse) -> Event:
    if resp.status < 200:
        return Event.PROVISIONAL
    if resp.status < 300:
        return Event.SUCCESS
    return Event.FAILURE


S = TransactionState
Handler = Callable[[Any, float, Any], None]


class _Transaction:
    """State-table driven core shared by the four transaction kinds."""

    _TABLE: ClassVar[Mapping[tuple[TransactionState, Event], Handler]] = {}
    _INITIAL: ClassVar[TransactionState]

    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.config = config or TimerConfig()
        self.created_at = now
        self.state = self._INITIAL
        self.last_response: SipResponse | None = None
        self._started = False
        self._outputs: list[Output] = []
        self._timers = TimerSet()
        self._interval = 0.0  # current retransmission interval of Timer A/E/G

    # -- shell-facing API
    def pop_outputs(self) -> list[Output]:
        out, self._outputs = self._outputs, []
        return out

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def on_timer(self, now: float) -> None:
        for name in self._timers.due(now):
            deadline = self._timers.deadline(name)
            if self.terminated or deadline is None or deadline > now:
                continue  # cancelled or re-armed by an earlier timer in this batch
            self._timers.cancel(name)
            self._dispatch(_TIMER_EVENTS[name], now, None)

    def transport_error(self, now: float) -> None:
        self._dispatch(Event.TRANSPORT_ERROR, now, None)

    # -- internals
    def _require_started(self) -> None:
        if not self._started:
            raise TransactionUsageError("transaction not started")

    def _mark_started(self) -> None:
        if self._started:
            raise TransactionUsageError("transaction already started")
        self._started = True

    def _dispatch(self, event: Event, now: float, message: SipMessage | None) -> None:
        if self.terminated:
            return
        handler = self._TABLE.get((self.state, event))
        if handler is not None:
            handler(self, now, message)

    def _emit(self, output: Output) -> None:
        self._outputs.append(output)

    def _arm(self, name: TimerName, duration: float, now: float) -> None:
        self._timers.start(name, now + duration)

    def _enter_linger(self, state: TransactionState, name: TimerName, duration: float, now: float) -> None:
        """Enter a state that only waits for stray retransmissions; zero duration ends it at once."""
        self.state = state
        if duration <= 0:
            self._terminate()
        else:
            self._arm(name, duration, now)

    def _terminate(self) -> None:
        self.state = S.TERMINATED
        self._timers.clear()
        self._emit(Terminated())

    # shared actions, usable from any table
    def _act_timeout(self, now: float, _msg: object, *, timer: TimerName | None = None) -> None:
        self._emit(Timeout(timer))
        self._terminate()

    def _act_transport_failure(self, now: float, _msg: object) -> None:
        self._emit(TransportFailure())
        self._terminate()

    def _act_terminate(self, now: float, _msg: object) -> None:
        self._terminate()

    def _act_absorb(self, now: float, _msg: object) -> None:
        return


class _ClientTransaction(_Transaction):
    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
    ) -> None:
        branch = request.via.branch
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise TransactionUsageError("client transactions need a z9hG4bK branch in the top Via")
        super().__init__(request, reliable, config, now)
        self.key: ClientKey = (branch, request.method)

    def receive(self, message: SipResponse, now: float) -> None:
        self._require_started()
        if not isinstance(message, SipResponse):
            raise TransactionUsageError("client transactions receive responses only")
        if transaction_key_for_response(message) != self.key:
            raise TransactionUsageError("response does not match this transaction")
        self._dispatch(_classify(message), now, message)

    def _act_deliver(self, now: float, resp: SipResponse) -> None:
        self.last_response = resp
        self._emit(Deliver(resp))

    def _act_retransmit_request(self, now: float, _msg: object) -> None:
        self._emit(Send(self.request))


class InviteClientTransaction(_ClientTransaction):
    """INVITE client transaction (RFC 3261 17.1.1, RFC 6026 7.2)."""

    _INITIAL = S.CALLING

    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
    ) -> None:
        if request.method != "INVITE":
            raise TransactionUsageError("InviteClientTransaction needs an INVITE")
        super().__init__(request, reliable, config, now)
        self.ack: SipRequest | None = None

    def start(self, now: float) -> None:
        self._mark_started()
        self._emit(Send(self.request))
        if not self.reliable:
            self._interval = self.config.timer_a()
            self._arm(TimerName.A, self._interval, now)
        self._arm(TimerName.B, self.config.timer_b(), now)

    def _timer_a(self, now: float, _msg: object) -> None:
        self._emit(Send(self.request))
        self._interval *= 2
        self._arm(TimerName.A, self._interval, now)

    def _timer_b(self, now: float, _msg: object) -> None:
        self._act_timeout(now, None, timer=TimerName.B)

    def _provisional(self, now: float, resp: SipResponse) -> None:
        self._timers.cancel(TimerName.A)
        self._timers.cancel(TimerName.B)
        self.state = S.PROCEEDING
        self._act_deliver(now, resp)

    def _success(self, now: float, resp: SipResponse) -> None:
        self._timers.clear()
        self.state = S.ACCEPTED
        self._act_deliver(now, resp)
        self._arm(TimerName.M, self.config.timer_m(), now)

    def _failure(self, now: float, resp: SipResponse) -> None:
        self._timers.clear()
        self.ack = make_ack(self.request, resp)
        self._emit(Send(self.ack))
        self._act_deliver(now, resp)
        self._enter_linger(S.COMPLETED, TimerName.D, self.config.timer_d(self.reliable), now)

    def _resend_ack(self, now: float, _resp: SipResponse) -> None:
        if self.ack is not None:
            self._emit(Send(self.ack))

    _TABLE = {
        (S.CALLING, Event.TIMER_A): _timer_a,
        (S.CALLING, Event.TIMER_B): _timer_b,
        (S.CALLING, Event.PROVISIONAL): _provisional,
        (S.PROCEEDING, Event.PROVISIONAL): _ClientTransaction._act_deliver,
        (S.CALLING, Event.SUCCESS): _success,
        (S.PROCEEDING, Event.SUCCESS): _success,
        (S.CALLING, Event.FAILURE): _failure,
        (S.PROCEEDING, Event.FAILURE): _failure,
        (S.COMPLETED, Event.FAILURE): _resend_ack,
        (S.COMPLETED, Event.TIMER_D): _Transaction._act_terminate,
        (S.ACCEPTED, Event.SUCCESS): _ClientTransaction._act_deliver,
        (S.ACCEPTED, Event.TIMER_M): _Transaction._act_terminate,
        (S.CALLING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.PROCEEDING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.COMPLETED, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
    }


class NonInviteClientTransaction(_ClientTransaction):
    """Non-INVITE client transaction (RFC 3261 17.1.2)."""

    _INITIAL = S.TRYING

    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise TransactionUsageError(f"{request.method} cannot use a non-INVITE client transaction")
        super().__init__(request, reliable, config, now)

    def start(self, now: float) -> None:
        self._mark_started()
        self._emit(Send(self.request))
        if not self.reliable:
            self._interval = self.config.timer_e()
            self._arm(TimerName.E, self._interval, now)
        self._arm(TimerName.F, self.config.timer_f(), now)

    def _timer_e(self, now: float, _msg: object) -> None:
        self._emit(Send(self.request))
        if self.state is S.PROCEEDING:
            self._interval = self.config.t2
        else:
            self._interval = min(self._interval * 2, self.config.t2)
        self._arm(TimerName.E, self._interval, now)

    def _timer_f(self, now: float, _msg: object) -> None:
        self._act_timeout(now, None, timer=TimerName.F)

    def _provisional(self, now: float, resp: SipResponse) -> None:
        self.state = S.PROCEEDING
        self._act_deliver(now, resp)

    def _final(self, now: float, resp: SipResponse) -> None:
        self._timers.clear()
        self._act_deliver(now, resp)
        self._enter_linger(S.COMPLETED, TimerName.K, self.config.timer_k(self.reliable), now)

    _TABLE = {
        (S.TRYING, Event.TIMER_E): _timer_e,
        (S.PROCEEDING, Event.TIMER_E): _timer_e,
        (S.TRYING, Event.TIMER_F): _timer_f,
        (S.PROCEEDING, Event.TIMER_F): _timer_f,
        (S.TRYING, Event.PROVISIONAL): _provisional,
        (S.PROCEEDING, Event.PROVISIONAL): _provisional,
        (S.TRYING, Event.SUCCESS): _final,
        (S.TRYING, Event.FAILURE): _final,
        (S.PROCEEDING, Event.SUCCESS): _final,
        (S.PROCEEDING, Event.FAILURE): _final,
        (S.COMPLETED, Event.TIMER_K): _Transaction._act_terminate,
        (S.TRYING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.PROCEEDING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.COMPLETED, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
    }


class _ServerTransaction(_Transaction):
    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(request, reliable, config, now)
        self.key: ServerKey = server_key_for_request(request)
        self.last_provisional: SipResponse | None = None

    def receive(self, message: SipRequest, now: float) -> None:
        self._require_started()
        if not isinstance(message, SipRequest):
            raise TransactionUsageError("server transactions receive requests only")
        if message.method == "ACK" and self.request.method == "INVITE":
            self._dispatch(Event.ACK, now, message)
        elif message.method == self.request.method:
            self._dispatch(Event.REQUEST, now, message)
        else:
            raise TransactionUsageError(f"{message.method} does not belong to this transaction")

    def send_response(self, response: SipResponse, now: float) -> None:
        self._require_started()
        if not isinstance(response, SipResponse):
            raise TransactionUsageError("send_response needs a response")
        if response.cseq.method != self.request.method:
            raise TransactionUsageError("response CSeq method does not match the request")
        self._dispatch(_classify(response), now, response)

    def _act_send(self, now: float, resp: SipResponse) -> None:
        self.last_response = resp
        if resp.status < 200:
            self.last_provisional = resp
        self._emit(Send(resp))

    def _act_resend_provisional(self, now: float, _req: object) -> None:
        if self.last_provisional is not None:
            self._emit(Send(self.last_provisional))

    def _act_resend_final(self, now: float, _req: object) -> None:
        if self.last_response is not None:
            self._emit(Send(self.last_response))


class InviteServerTransaction(_ServerTransaction):
    """INVITE server transaction (RFC 3261 17.2.1, RFC 6026 7.1)."""

    _INITIAL = S.PROCEEDING

    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
        *,
        trying_delay: float | None = 0.0,
    ) -> None:
        if request.method != "INVITE":
            raise TransactionUsageError("InviteServerTransaction needs an INVITE")
        super().__init__(request, reliable, config, now)
        self.trying_delay = trying_delay

    def start(self, now: float) -> None:
        self._mark_started()
        self._emit(Deliver(self.request))
        if self.trying_delay is None:
            return
        if self.trying_delay <= 0:
            self._send_trying(now, None)
        else:
            self._arm(TimerName.TRYING, self.trying_delay, now)

    def _send_trying(self, now: float, _msg: object) -> None:
        self._act_send(now, make_response(self.request, 100))

    def _retransmitted_invite(self, now: float, req: SipRequest) -> None:
        if self.last_provisional is None and self.trying_delay is not None:
            self._timers.cancel(TimerName.TRYING)
            self._send_trying(now, None)
        else:
            self._act_resend_provisional(now, req)

    def _provisional(self, now: float, resp: SipResponse) -> None:
        self._timers.cancel(TimerName.TRYING)
        self._act_send(now, resp)

    def _success(self, now: float, resp: SipResponse) -> None:
        self._timers.clear()
        self._act_send(now, resp)
        self.state = S.ACCEPTED
        self._arm(TimerName.L, self.config.timer_l(), now)

    def _failure(self, now: float, resp: SipResponse) -> None:
        self._timers.clear()
        self._act_send(now, resp)
        self.state = S.COMPLETED
        if not self.reliable:
            self._interval = self.config.timer_g()
            self._arm(TimerName.G, self._interval, now)
        self._arm(TimerName.H, self.config.timer_h(), now)

    def _timer_g(self, now: float, _msg: object) -> None:
        self._act_resend_final(now, None)
        self._interval = min(self._interval * 2, self.config.t2)
        self._arm(TimerName.G, self._interval, now)

    def _timer_h(self, now: float, _msg: object) -> None:
        self._act_timeout(now, None, timer=TimerName.H)

    def _ack(self, now: float, _ack: SipRequest) -> None:
        self._timers.clear()
        self._enter_linger(S.CONFIRMED, TimerName.I, self.config.timer_i(self.reliable), now)

    def _ack_after_2xx(self, now: float, ack: SipRequest) -> None:
        self._emit(Deliver(ack))

    def _accepted_transport_error(self, now: float, _msg: object) -> None:
        # RFC 6026: the TU owns 2xx retransmission; it decides whether to give up (e.g. send BYE).
        self._emit(TransportFailure())

    _TABLE = {
        (S.PROCEEDING, Event.TIMER_TRYING): _send_trying,
        (S.PROCEEDING, Event.REQUEST): _retransmitted_invite,
        (S.PROCEEDING, Event.PROVISIONAL): _provisional,
        (S.PROCEEDING, Event.SUCCESS): _success,
        (S.PROCEEDING, Event.FAILURE): _failure,
        (S.COMPLETED, Event.REQUEST): _ServerTransaction._act_resend_final,
        (S.COMPLETED, Event.TIMER_G): _timer_g,
        (S.COMPLETED, Event.TIMER_H): _timer_h,
        (S.COMPLETED, Event.ACK): _ack,
        (S.CONFIRMED, Event.TIMER_I): _Transaction._act_terminate,
        (S.ACCEPTED, Event.SUCCESS): _ServerTransaction._act_send,
        (S.ACCEPTED, Event.ACK): _ack_after_2xx,
        (S.ACCEPTED, Event.REQUEST): _Transaction._act_absorb,
        (S.ACCEPTED, Event.TIMER_L): _Transaction._act_terminate,
        (S.PROCEEDING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.COMPLETED, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.ACCEPTED, Event.TRANSPORT_ERROR): _accepted_transport_error,
    }


class NonInviteServerTransaction(_ServerTransaction):
    """Non-INVITE server transaction (RFC 3261 17.2.2)."""

    _INITIAL = S.TRYING

    def __init__(
        self,
        request: SipRequest,
        reliable: bool,
        config: TimerConfig | None = None,
        now: float = 0.0,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise TransactionUsageError(f"{request.method} cannot use a non-INVITE server transaction")
        super().__init__(request, reliable, config, now)

    def start(self, now: float) -> None:
        self._mark_started()
        self._emit(Deliver(self.request))

    def _provisional(self, now: float, resp: SipResponse) -> None:
        self.state = S.PROCEEDING
        self._act_send(now, resp)

    def _final(self, now: float, resp: SipResponse) -> None:
        self._act_send(now, resp)
        self._enter_linger(S.COMPLETED, TimerName.J, self.config.timer_j(self.reliable), now)

    _TABLE = {
        (S.TRYING, Event.PROVISIONAL): _provisional,
        (S.PROCEEDING, Event.PROVISIONAL): _provisional,
        (S.TRYING, Event.SUCCESS): _final,
        (S.TRYING, Event.FAILURE): _final,
        (S.PROCEEDING, Event.SUCCESS): _final,
        (S.PROCEEDING, Event.FAILURE): _final,
        (S.TRYING, Event.REQUEST): _Transaction._act_absorb,
        (S.PROCEEDING, Event.REQUEST): _ServerTransaction._act_resend_provisional,
        (S.COMPLETED, Event.REQUEST): _ServerTransaction._act_resend_final,
        (S.COMPLETED, Event.TIMER_J): _Transaction._act_terminate,
        (S.TRYING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.PROCEEDING, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
        (S.COMPLETED, Event.TRANSPORT_ERROR): _Transaction._act_transport_failure,
    }
