"""SipDialer: the call backend that places calls through SIP trunks.

It turns a stored call into an outbound INVITE on the trunk chosen for its number,
keeps each trunk within its limits, and reports what the SIP user agent sees back to
the CallService. Events are handled by one task in arrival order, so a call's
ringing, answer and end are always stored in that order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

from gateway.calls.backend import CallProgress
from gateway.calls.model import Call, CallOutcome
from gateway.calls.status import CallStatus, HangupCause, HangupSide
from gateway.calls.trunks import TrunkGate
from gateway.config import Settings, TrunkConfig
from gateway.logs import call_id_var
from gateway.sip.call import UaUsageError
from gateway.sip.digest import DigestCredentials
from gateway.sip.errors import SipError
from gateway.sip.sdp import NegotiatedMedia
from gateway.sip.stack import SipStack
from gateway.sip.timers import TimerConfig
from gateway.sip.transport import is_ip
from gateway.sip.uri import SipUri
from gateway.sip.useragent import (
    Answered,
    CallEvent,
    CallOutcomeSip,
    Ended,
    LocalMedia,
    OutboundCallParams,
    Released,
    Ringing,
    Trying,
    UaConfig,
)
from media.ports import PortPool, PortsExhausted

log = logging.getLogger("gateway.dialer")

_RESULT_STATUS = {
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "no_answer": CallStatus.NO_ANSWER,
    "failed": CallStatus.FAILED,
    "cancelled": CallStatus.CANCELLED,
}


@dataclass
class _Leg:
    call: Call
    trunk: TrunkConfig
    rtp_port: int | None = None
    placed: bool = False
    provisional: bool = False
    max_duration_timer: asyncio.TimerHandle | None = None
    media: NegotiatedMedia | None = None


class SipDialer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._progress: CallProgress | None = None
        self._stack: SipStack | None = None
        self._gates = {t.id: TrunkGate(t) for t in settings.trunks}
        self._legs: dict[str, _Leg] = {}
        self._ports = PortPool(settings.rtp.port_min, settings.rtp.port_max)
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._pump: asyncio.TimerHandle | None = None
        self._trusted: set[str] = set()
        self._trunk_addr: dict[str, str] = {}

    # --- CallBackend -----------------------------------------------------------------------

    async def start(self, progress: CallProgress) -> None:
        self._progress = progress
        await self._resolve_trunks()
        sip = self.settings.sip
        config = UaConfig(
            local_host=sip.public_host or sip.host,
            udp_port=sip.port if "udp" in sip.transports else None,
            tcp_port=sip.port if "tcp" in sip.transports else None,
            user_agent=sip.user_agent,
            timers=TimerConfig(t1=sip.t1, t2=sip.t2, t4=sip.t4),
            is_trusted=self._is_trusted,
        )
        self._stack = SipStack(config, sip.host, self._on_call_event)
        await self._stack.start()
        self._worker = asyncio.get_running_loop().create_task(self._run_events())

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._worker is not None:
            self._worker.cancel()
        if self._stack is not None:
            await self._stack.stop()

    @property
    def stack(self) -> SipStack:
        assert self._stack is not None
        return self._stack

    def admit(self, call: Call) -> None:
        trunk = self._trunk_for(call)
        self._gates[trunk.id].check_admission()

    async def dial(self, call: Call) -> None:
        trunk = self._trunk_for(call)
        self._legs[call.id] = _Leg(call=call, trunk=trunk)
        self._gates[trunk.id].enqueue(call.id)
        self._run_gates()

    async def hangup(self, call_id: str, cause: HangupCause) -> bool:
        leg = self._legs.get(call_id)
        if leg is None:
            return False
        if not leg.placed:
            # Still waiting for the trunk: nothing was sent, so nothing to cancel on the wire.
            self._gates[leg.trunk.id].remove(call_id)
            self._legs.pop(call_id, None)
            await self._report_end(call_id, CallOutcome(CallStatus.CANCELLED, cause, HangupSide.LOCAL))
            return True
        self.stack.hangup(call_id, cause)
        if not leg.provisional:
            # RFC 3261 9.1: no CANCEL before a provisional response, and that may never
            # come (Timer B is 32 s). The caller's intent is final, so the call is settled
            # now; the user agent still cancels, or ACKs and BYEs a late 200, on its own.
            await self._report_end(call_id, CallOutcome(CallStatus.CANCELLED, cause, HangupSide.LOCAL))
        return True

    # --- placing calls ---------------------------------------------------------------------

    def _trunk_for(self, call: Call) -> TrunkConfig:
        trunk = next((t for t in self.settings.trunks if t.id == call.trunk_id), None)
        if trunk is None:
            trunk = self.settings.route(call.to)
        assert trunk is not None, "calls are only created with a route"
        return trunk

    def _run_gates(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        wake: float | None = None
        for gate in self._gates.values():
            ready, again = gate.due(now)
            for call_id in ready:
                self._place(call_id)
            if again is not None:
                wake = again if wake is None else min(wake, again)
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if wake is not None:
            self._pump = loop.call_at(wake, self._run_gates)

    def _place(self, call_id: str) -> None:
        leg = self._legs.get(call_id)
        if leg is None:
            return
        token = call_id_var.set(call_id)
        try:
            try:
                leg.rtp_port = self._ports.allocate()
            except PortsExhausted:
                log.error("no free RTP port; failing call")
                self._gates[leg.trunk.id].release()
                self._legs.pop(call_id, None)
                self._events.put_nowait(
                    (call_id, CallOutcome(CallStatus.FAILED, HangupCause.MEDIA_UNAVAILABLE, HangupSide.LOCAL))
                )
                return
            try:
                params = self._params(leg)
                leg.placed = True
                self.stack.place_call(params)
            except (UaUsageError, SipError, ValueError) as exc:
                # A number or header the SIP layer cannot express: fail this call, keep the rest.
                log.error("cannot place call", extra={"error": str(exc)})
                self._ports.release(leg.rtp_port)
                self._gates[leg.trunk.id].release()
                self._legs.pop(call_id, None)
                self._events.put_nowait(
                    (call_id, CallOutcome(CallStatus.FAILED, HangupCause.REJECTED, HangupSide.LOCAL))
                )
        finally:
            call_id_var.reset(token)

    def _params(self, leg: _Leg) -> OutboundCallParams:
        trunk, call = leg.trunk, leg.call
        target = trunk.target
        number = call.to if trunk.number_format == "e164" else call.to.lstrip("+")
        user = f"{trunk.tech_prefix}{number}"
        host = self._trunk_addr.get(trunk.id, target.host)
        request_uri = SipUri.parse(f"sip:{user}@{_host_for_uri(target.host)}:{target.port};transport={target.transport}")
        local_host = self.settings.sip.public_host or self.settings.sip.host
        credentials = (
            DigestCredentials(trunk.username, trunk.password.get_secret_value())
            if trunk.username and trunk.password
            else None
        )
        assert leg.rtp_port is not None
        return OutboundCallParams(
            call_ref=call.id,
            request_uri=request_uri,
            destination=(host, target.port),
            transport=target.transport,
            from_uri=SipUri.parse(f"sip:{call.from_}@{_host_for_uri(local_host)}"),
            to_uri=SipUri.parse(f"sip:{user}@{_host_for_uri(target.host)}"),
            local_media=LocalMedia(address=local_host, rtp_port=leg.rtp_port, codecs=tuple(trunk.codecs)),
            credentials=credentials,
            ring_timeout=trunk.ring_timeout_seconds,
            session_expires=self.settings.sip.session_expires_seconds,
            min_se=self.settings.sip.min_se_seconds,
        )

    async def _resolve_trunks(self) -> None:
        loop = asyncio.get_running_loop()
        for trunk in self.settings.trunks:
            host = trunk.target.host
            self._trusted.update(trunk.inbound_addresses)
            if is_ip(host):
                addr = host
            else:
                try:
                    infos = await loop.getaddrinfo(host, trunk.target.port, type=socket.SOCK_DGRAM)
                    addr = str(infos[0][4][0])
                except OSError:
                    log.warning("trunk host does not resolve (yet)", extra={"trunk": trunk.id, "host": host})
                    continue
            self._trunk_addr[trunk.id] = addr
            self._trusted.add(addr)

    def _is_trusted(self, source_ip: str) -> bool:
        return source_ip in self._trusted

    # --- events from the user agent --------------------------------------------------------

    def _on_call_event(self, event: CallEvent) -> None:
        self._events.put_nowait((event.call_ref, event.event))

    async def _run_events(self) -> None:
        while True:
            call_id, body = await self._events.get()
            token = call_id_var.set(call_id)
            try:
                await self._handle(call_id, body)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad event must not stop all calls
                log.exception("call event failed", extra={"event": type(body).__name__})
            finally:
                call_id_var.reset(token)

    async def _handle(self, call_id: str, body: object) -> None:
        assert self._progress is not None
        leg = self._legs.get(call_id)
        if isinstance(body, CallOutcome):
            await self._progress.ended(call_id, body)
        elif isinstance(body, Trying):
            await self._progress.update(call_id, sip_call_id=body.sip_call_id)
        elif isinstance(body, Ringing):
            if leg is not None:
                leg.provisional = True
            await self._progress.ringing(call_id, body.status)
        elif isinstance(body, Answered):
            if leg is not None:
                leg.provisional = True
                leg.media = body.media
                self._arm_max_duration(leg)
            await self._progress.answered(call_id)
        elif isinstance(body, Ended):
            if leg is not None and leg.max_duration_timer is not None:
                leg.max_duration_timer.cancel()
            await self._report_end(call_id, _outcome(body.outcome))
        elif isinstance(body, Released) and leg is not None:
            if leg.rtp_port is not None:
                self._ports.release(leg.rtp_port)
            self._gates[leg.trunk.id].release()
            self._legs.pop(call_id, None)
            self._run_gates()

    async def _report_end(self, call_id: str, outcome: CallOutcome) -> None:
        assert self._progress is not None
        await self._progress.ended(call_id, outcome)

    def _arm_max_duration(self, leg: _Leg) -> None:
        # Counted from answer: that is the part of the call the limit protects.
        loop = asyncio.get_running_loop()
        leg.max_duration_timer = loop.call_later(
            leg.call.max_duration, lambda: self.stack.hangup(leg.call.id, HangupCause.MAX_DURATION)
        )


def _outcome(sip: CallOutcomeSip) -> CallOutcome:
    return CallOutcome(
        status=_RESULT_STATUS[sip.result],
        cause=sip.cause,
        side=sip.side,
        sip_status=sip.sip_status,
        sip_reason=sip.sip_reason,
    )


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
