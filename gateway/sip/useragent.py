"""The gateway's SIP user agent: outbound calls through trunks, sans-I/O.

The shell (``gateway.sip.stack``) owns sockets and the clock. It hands every received
datagram or stream message to ``receive``, calls ``on_timer`` once ``now >=
next_deadline()``, reports failed sends with ``transport_error``, and after every call
drains ``pop_outputs()``: ``Transmit`` goes to the transport, ``CallEvent`` to call
control. ``now`` is monotonic seconds. Nothing here blocks, sleeps or raises out of
``receive``/``framing_error``/``on_timer``/``hangup``/``transport_error``.

API
---
::

    Address = tuple[str, int]; Transport = Literal["udp", "tcp"]
    UaConfig(local_host, udp_port, tcp_port, user_agent="orbit-gateway",
             timers=TimerConfig(), is_trusted=<trust nobody>,
             max_message_size=65536)                 larger messages are refused (513)
    SipUserAgent(config)
        place_call(params: OutboundCallParams, now)   raises UaUsageError (call_ref in use,
                                                       transport not enabled, bad local media
                                                       or extra headers)
        hangup(call_ref, cause, now)                  CANCEL before answer, BYE after; idempotent;
                                                       unknown call_ref: ignored
        release(call_ref, snapshot, credentials, now)  end a call another process placed (after a
                                                       crash) from its LegSnapshot: CANCEL or BYE;
                                                       Ended then Released, like a placed call
        receive(data, source, transport, now) -> bool  True: valid SIP that source may send us
                                                       (a trunk's, or for one of our calls)
        framing_error(error, source, transport, now)  a stream broke (SipFramingError, with
                                                       its head): answered as unparseable
        transport_error(destination, transport, now)  a send to that (host, port) failed
        on_timer(now); next_deadline() -> float | None
        pop_outputs() -> list[Transmit | CallEvent]
        active_calls() -> int                         calls whose outcome is not known yet
        has_call(call_ref) -> bool                    (addition) state kept until Released
        uses_tcp_peer(peer) -> bool                   a call not Released yet dialled that TCP
                                                       peer or heard from it (keep its connection)
        stats: UaStats

Types and events are defined in ``gateway.sip.ua_events`` and re-exported here: ``LocalMedia``,
``OutboundCallParams``, ``CallOutcome``, ``Trying``, ``Ringing``, ``Answered``,
``MediaUpdated``, ``DtmfReceived``, ``Ended``, ``Released``, ``LegUpdated``, ``CallEvent``, ``Transmit``,
``UaOutput``, ``UaStats``, ``UaUsageError``.

Per call: ``Trying`` (from ``place_call``), ``Ringing``* , ``Answered``?, ``MediaUpdated``* /
``DtmfReceived``* / ``LegUpdated``*, exactly one ``Ended``, then ``Released`` once every transaction of the
call has terminated (the RTP port may then be reused). A ``call_ref`` stays in use until
``Released``; a failover attempt needs its own ``call_ref``.

``Transmit.destination`` is the source address for responses (RFC 3581 symmetric
response routing), the trunk address for the INVITE/CANCEL, and for ACK/BYE/re-INVITE
the next hop of the dialog (first Record-Route or the Contact), which may be a host name
the shell has to resolve.

Who may talk to us
------------------
Decided first on the raw bytes, before the full parse, with the Call-ID alone
(``peek_call_id``): a source that is not a trunk (``is_trusted``) can only be
talking to us about one of our calls, so anything else it sends costs no parse.
::

    untrusted source, Call-ID of none of our calls  -> dropped unparsed (requests and responses)
    --- parsed from here on ---
    response matching a client transaction          -> its call; otherwise dropped
    request matching a call's server transaction    -> absorbed / re-answered
    request in a dialog of ours (Call-ID + tags)    -> handled by the call (any source)
    ACK matching nothing                            -> dropped
    To tag, no dialog: trusted -> 481, untrusted -> dropped
    no To tag (out of dialog): untrusted -> dropped; trusted ->
        OPTIONS 200 | INVITE 403 | CANCEL/BYE/INFO/UPDATE 481 | REGISTER... 405 | unknown 501
        (a Request-URI that is not sip:/sips: -> 416)
    not SIP -> counted, dropped; SIP we cannot act on -> its error's status (400 for a
        bad header, 488 for SDP without common audio, ...; see gateway.sip.errors) if
        trusted, else dropped
    a request that fails to parse (or is larger than max_message_size), from a trusted
        source, not ACK, its Via/From/To/Call-ID/CSeq still valid -> the error's status:
        505 (SIP version), 513 (too large), 400 (anything else), the problem named in
        the reason phrase (RFC 3261 8.2.2, 21.4.1); otherwise dropped

Out-of-dialog answers are stateless (RFC 3261 8.2.7) with a To tag derived from the
request, so a retransmitted request gets the same answer and nothing is created.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.outcome import HangupCause
from gateway.sip.digest import DigestCredentials
from gateway.sip.errors import (
    SipError,
    SipFramingError,
    SipMessageTooLargeError,
    SipParseError,
    answer_status,
)
from gateway.sip.framing import DEFAULT_MAX_MESSAGE_SIZE
from gateway.sip.message import (
    SalvagedRequest,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    peek_call_id,
    reason_phrase,
    salvage_request,
)
from gateway.sip.outbound_call import OutboundCall
from gateway.sip.recovery import LegRelease
from gateway.sip.snapshot import LegSnapshot
from gateway.sip.timers import TimerConfig
from gateway.sip.ua_events import (
    ACCEPT,
    ALLOW,
    KNOWN_UNSUPPORTED,
    SUPPORTED,
    Address,
    Answered,
    CallEvent,
    CallEventBody,
    CallOutcome,
    CallSettings,
    DtmfReceived,
    Ended,
    LegUpdated,
    LocalMedia,
    MediaUpdated,
    OutboundCallParams,
    Released,
    Ringing,
    Transmit,
    Transport,
    Trying,
    UaOutput,
    UaStats,
    UaUsageError,
)

__all__ = [
    "Address",
    "Answered",
    "CallEvent",
    "CallEventBody",
    "CallOutcome",
    "DtmfReceived",
    "Ended",
    "LegSnapshot",
    "LegUpdated",
    "LocalMedia",
    "MediaUpdated",
    "OutboundCallParams",
    "Released",
    "Ringing",
    "SipUserAgent",
    "Transmit",
    "Transport",
    "Trying",
    "UaConfig",
    "UaOutput",
    "UaStats",
    "UaUsageError",
    "trust_nobody",
]

log = logging.getLogger("gateway.sip.useragent")

# Requests that only make sense inside a dialog: without one the answer is 481.
_DIALOG_ONLY = frozenset({"CANCEL", "BYE", "INFO", "UPDATE"})

# What a reason phrase may hold (RFC 3261 25.1: reserved, unreserved, SP); the rest becomes "?".
_PHRASE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'();/?:@&=+$, "
)
_PHRASE_DETAIL_MAX = 100


def error_reason(status: int, error: SipError) -> str:
    """A reason phrase naming the problem: ``Bad Request (invalid CSeq method 'X')``."""
    detail = "".join(c if c in _PHRASE_CHARS else "?" for c in str(error)[:_PHRASE_DETAIL_MAX])
    return f"{reason_phrase(status)} ({detail})" if detail else reason_phrase(status)


def trust_nobody(source_ip: str) -> bool:
    return False


class _Leg(Protocol):
    """What the user agent drives: a call it placed (OutboundCall) or one it ends for a
    process that is gone (LegRelease)."""

    call_ref: str
    sip_call_id: str

    @property
    def ended(self) -> bool: ...

    @property
    def released(self) -> bool: ...

    def hangup(self, cause: HangupCause, now: float) -> None: ...

    def receive_response(self, response: SipResponse, now: float) -> bool: ...

    def receive_request(self, request: SipRequest, source: Address, transport: Transport, now: float) -> bool: ...

    def transport_error(self, destination: Address, transport: Transport, now: float) -> None: ...

    def on_timer(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...


def _peer(address: Address) -> Address:
    return (address[0].strip("[]"), address[1])  # as the transport names a connection's peer


@dataclass(frozen=True)
class UaConfig:
    local_host: str  # address written in Via / Contact (public_host if set)
    udp_port: int | None  # our listening ports (None: transport not enabled)
    tcp_port: int | None
    user_agent: str = "orbit-gateway"
    timers: TimerConfig = field(default_factory=TimerConfig)
    is_trusted: Callable[[str], bool] = trust_nobody  # source IP -> is it a configured trunk?
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # octets; streams are framed with the same limit


class SipUserAgent:
    def __init__(self, config: UaConfig) -> None:
        self.config = config
        self.stats = UaStats()
        self._settings = CallSettings(
            local_host=config.local_host,
            udp_port=config.udp_port,
            tcp_port=config.tcp_port,
            user_agent=config.user_agent,
            timers=config.timers,
        )
        self._outputs: list[UaOutput] = []
        self._calls: dict[str, _Leg] = {}
        self._by_sip_call_id: dict[str, _Leg] = {}
        # Earliest deadline of each call, with lazy deletion: an entry is live only
        # while it equals _scheduled[call_ref].
        self._heap: list[tuple[float, int, str]] = []
        self._scheduled: dict[str, float] = {}
        self._heap_seq = 0
        self._tag_key = secrets.token_bytes(16)
        # The TCP peers each call uses (its trunk, and whoever sent it something over TCP),
        # so the shell does not close an idle connection a call still rests on.
        self._tcp_peers: dict[str, set[Address]] = {}

    # ------------------------------------------------------------------ API

    def place_call(self, params: OutboundCallParams, now: float) -> None:
        if params.call_ref in self._calls:
            raise UaUsageError(f"call_ref {params.call_ref!r} is still in use")
        call = OutboundCall(params, self._settings, self.stats, self._outputs)
        self._calls[call.call_ref] = call
        self._by_sip_call_id[call.sip_call_id] = call
        if params.transport == "tcp":
            self._tcp_peers[call.call_ref] = {_peer(params.destination)}
        with self._guard(call):
            call.start(now)

    def release(
        self, call_ref: str, snapshot: LegSnapshot, credentials: DigestCredentials | None, now: float
    ) -> None:
        if call_ref in self._calls or snapshot.call_id in self._by_sip_call_id:
            raise UaUsageError(f"call_ref {call_ref!r} is still in use")
        if self._settings.port(snapshot.transport) is None:
            raise UaUsageError(f"transport {snapshot.transport!r} is not enabled")
        outputs = self._outputs
        release = LegRelease(call_ref, snapshot, credentials, self._settings, self.stats, outputs, now)
        self._calls[call_ref] = release
        self._by_sip_call_id[release.sip_call_id] = release
        self._reschedule(release)

    def hangup(self, call_ref: str, cause: HangupCause, now: float) -> None:
        call = self._calls.get(call_ref)
        if call is not None:
            with self._guard(call):
                call.hangup(cause, now)

    def receive(self, data: bytes, source: Address, transport: Transport, now: float) -> bool:
        self.stats.received += 1
        if not data.strip(b"\r\n\t "):
            self.stats.keepalives += 1
            return False
        trusted = self._trusted(source)
        if not trusted and peek_call_id(data) not in self._by_sip_call_id:
            self.stats.dropped_untrusted += 1  # no call of ours: not worth a full parse
            return False
        try:
            if len(data) > self.config.max_message_size:
                raise SipMessageTooLargeError(
                    f"message of {len(data)} octets exceeds {self.config.max_message_size}"
                )
            message = parse_message(data)
        except SipParseError as exc:
            self._unparseable(data, exc, source, transport, trusted)
            return False
        call: _Leg | None = None
        ours = False
        try:
            call = self._by_sip_call_id.get(message.call_id)
            if isinstance(message, SipResponse):
                ours = call is not None and call.receive_response(message, now)
                if not ours:
                    self.stats.dropped_responses += 1
            else:
                ours = call is not None and call.receive_request(message, source, transport, now)
                if not ours:
                    self._unmatched_request(message, source, transport, trusted)
            if ours and transport == "tcp" and call is not None:
                self._tcp_peers.setdefault(call.call_ref, set()).add(_peer(source))
        except (SipError, ValueError) as exc:
            # Typed errors (SDP, digest, headers...) carry the status to answer with.
            self.stats.bad_messages += 1
            if isinstance(message, SipRequest) and message.method != "ACK" and trusted:
                self._reply(message, answer_status(exc), source, transport)
        except Exception:
            self.stats.internal_errors += 1
            log.exception("sip message handling failed", extra={"call_id": call.call_ref if call else None})
        finally:
            if call is not None:
                self._reschedule(call)
        return trusted or ours

    def framing_error(
        self, error: SipFramingError, source: Address, transport: Transport, now: float
    ) -> None:
        """A stream could not be split into messages (the shell closes it after this)."""
        self.stats.received += 1
        self._unparseable(error.head or b"", error, source, transport, self._trusted(source))

    def transport_error(self, destination: Address, transport: Transport, now: float) -> None:
        for call in list(self._calls.values()):
            with self._guard(call):
                call.transport_error(destination, transport, now)

    def on_timer(self, now: float) -> None:
        due: list[_Leg] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, _, call_ref = heapq.heappop(self._heap)
            if self._scheduled.get(call_ref) != deadline:
                continue
            del self._scheduled[call_ref]
            call = self._calls.get(call_ref)
            if call is not None:
                due.append(call)
        for call in due:
            with self._guard(call):
                call.on_timer(now)

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, _, call_ref = self._heap[0]
            if self._scheduled.get(call_ref) == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def pop_outputs(self) -> list[UaOutput]:
        # The calls append to this very list, so it is emptied in place.
        out = list(self._outputs)
        self._outputs.clear()
        return out

    def active_calls(self) -> int:
        return sum(1 for call in self._calls.values() if not call.ended)

    def has_call(self, call_ref: str) -> bool:
        return call_ref in self._calls

    def uses_tcp_peer(self, peer: Address) -> bool:
        # Asked only about connections idle for minutes: a scan of the live calls is fine.
        wanted = _peer(peer)
        return any(wanted in peers for peers in self._tcp_peers.values())

    # ------------------------------------------------------------------ internals

    def _guard(self, call: _Leg) -> _CallGuard:
        return _CallGuard(self, call)

    def _reschedule(self, call: _Leg) -> None:
        if call.released:
            self._calls.pop(call.call_ref, None)
            self._by_sip_call_id.pop(call.sip_call_id, None)
            self._scheduled.pop(call.call_ref, None)
            self._tcp_peers.pop(call.call_ref, None)
            return
        deadline = call.next_deadline()
        if deadline is None:
            self._scheduled.pop(call.call_ref, None)
        elif self._scheduled.get(call.call_ref) != deadline:
            self._scheduled[call.call_ref] = deadline
            self._heap_seq += 1
            heapq.heappush(self._heap, (deadline, self._heap_seq, call.call_ref))

    def _trusted(self, source: Address) -> bool:
        try:
            return bool(self.config.is_trusted(source[0]))
        except Exception:
            log.exception("is_trusted failed", extra={"source": source[0]})
            return False

    def _unparseable(
        self, data: bytes, error: SipParseError, source: Address, transport: Transport, trusted: bool
    ) -> None:
        """Answer a request that failed to parse, statelessly, when a trunk sent it and it can be."""
        self.stats.parse_errors += 1
        if not trusted:
            return
        request = salvage_request(data)
        if request is None or request.method == "ACK":
            return
        if self._reply(request, error.status, source, transport, reason=error_reason(error.status, error)):
            self.stats.answered_invalid += 1
            log.info(
                "invalid sip request answered",
                extra={"source": f"{source[0]}:{source[1]}", "status": error.status, "error": str(error)},
            )

    def _unmatched_request(
        self, request: SipRequest, source: Address, transport: Transport, trusted: bool
    ) -> None:
        method = request.method
        if method == "ACK":
            self.stats.dropped_requests += 1
            return
        if not trusted:
            self.stats.dropped_untrusted += 1
            return
        if not request.uri.is_sip:
            self._reply(request, 416, source, transport)  # 8.2.2.1
        elif request.to_tag is not None or method in _DIALOG_ONLY:
            self._reply(request, 481, source, transport)
        elif method == "OPTIONS":
            self.stats.options_answered += 1
            self._reply(
                request,
                200,
                source,
                transport,
                headers=[("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED)],
            )
        elif method == "INVITE":
            self.stats.rejected_invites += 1
            self._reply(request, 403, source, transport, reason="Inbound Calls Not Accepted")
        elif method in KNOWN_UNSUPPORTED:
            self._reply(request, 405, source, transport, headers=[("Allow", ALLOW)])
        else:
            self._reply(request, 501, source, transport)

    def _reply(
        self,
        request: SipRequest | SalvagedRequest,
        status: int,
        source: Address,
        transport: Transport,
        *,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> bool:
        """A stateless response (8.2.7) sent back to where the request came from (RFC 3581)."""
        to_tag = None if request.to_tag is not None else self._stateless_tag(request)
        all_headers = [("Server", self.config.user_agent), *(headers or [])]
        try:
            response = make_response(request, status, reason, to_tag=to_tag, headers=all_headers)
            data = bytes(response)
        except (SipError, ValueError):
            return False  # the request is too broken to answer
        if status == 481:
            self.stats.answered_481 += 1
        elif status == 400:
            self.stats.answered_400 += 1
        self.stats.sent += 1
        self._outputs.append(Transmit(data, source, transport))
        return True

    def _stateless_tag(self, request: SipRequest | SalvagedRequest) -> str:
        # Same request (and retransmissions) -> same tag, without keeping any state.
        try:
            branch = request.via.branch or ""
        except SipError:
            branch = ""
        seed = f"{request.call_id}|{request.from_tag or ''}|{branch}".encode("utf-8", "surrogateescape")
        return hashlib.blake2b(seed, key=self._tag_key, digest_size=8).hexdigest()


class _CallGuard:
    """Keeps one call's failure from escaping, and reschedules the call afterwards."""

    def __init__(self, ua: SipUserAgent, call: _Leg) -> None:
        self._ua = ua
        self._call = call

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        self._ua._reschedule(self._call)
        if exc is None or not isinstance(exc, Exception):
            return False
        self._ua.stats.internal_errors += 1
        log.error("sip call handling failed", exc_info=exc, extra={"call_id": self._call.call_ref})
        return True
