"""SipDialer: the call backend that places calls through SIP trunks.

It turns a stored call into an outbound INVITE on the trunk chosen for its number,
keeps each trunk within its limits, and reports what the SIP user agent sees back to
the CallService. Each call's events go to its CallLeg, which handles them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.calls.backend import CallProgress
from gateway.calls.leg import CallLeg
from gateway.calls.model import Call
from gateway.calls.trunks import TrunkGate
from gateway.config import Settings, TrunkConfig
from gateway.logs import call_id_var
from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.sip.connections import TcpLimits
from gateway.sip.digest import DigestCredentials
from gateway.sip.errors import SipError
from gateway.sip.stack import SipStack
from gateway.sip.timers import TimerConfig
from gateway.sip.transport import is_ip
from gateway.sip.uri import SipUri
from gateway.sip.useragent import (
    CallEvent,
    Ended,
    LegSnapshot,
    LocalMedia,
    OutboundCallParams,
    Released,
    UaConfig,
    UaUsageError,
)
from media.clock import MediaClock
from media.endpoint import MediaPortBusy
from media.jitterbuffer import JitterBufferStats
from media.ports import PortPool, PortsExhausted
from media.resample import FrameResamplers

if TYPE_CHECKING:
    from gateway.recordings import RecordingUploader

log = logging.getLogger("gateway.dialer")


class SipDialer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._progress: CallProgress | None = None
        self._stack: SipStack | None = None
        self._gates = {t.id: TrunkGate(t) for t in settings.trunks}
        self._legs: dict[str, CallLeg] = {}
        self._ports = PortPool(settings.rtp.port_min, settings.rtp.port_max)
        # Calls spread over 4 groups 5 ms apart: each call keeps its 20 ms grid, but the
        # packets of all calls (and the far ends' echoes of them) do not come in one burst.
        self._clock = MediaClock(phases=4, on_lateness=metrics.clock_lateness)
        # Agent audio not at 8 kHz: every call's frames resampled in one batch per tick phase.
        self._resamplers = FrameResamplers()
        self._clock.add_batch(self._resamplers.run)
        self._pump: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.recordings: RecordingUploader | None = None
        self._trusted: set[str] = set()
        self._trunk_addr: dict[str, str] = {}
        # Playout counters of the calls whose legs are gone (live ones are read from their sessions).
        self._playout_done: Counter[str] = Counter()
        # Calls a previous process carried, being ended on the wire: call id -> its Ended.
        self._releasing: dict[str, asyncio.Future[None]] = {}

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
            max_message_size=sip.max_message_bytes,
        )
        limits = TcpLimits(
            max_connections=sip.tcp_max_connections,
            max_per_source=sip.tcp_max_connections_per_source,
            first_message_timeout=sip.tcp_first_message_timeout_seconds,
            idle_timeout=sip.tcp_idle_timeout_seconds,
            accept=sip.tcp_accept,
        )
        self._stack = SipStack(config, sip.host, self._on_call_event, tcp_limits=limits)
        await self._stack.start()
        self._clock.start()
        metrics.watch_playout(self.playout_frames)

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        for leg in list(self._legs.values()):
            leg.deliver(Released())
        for leg in list(self._legs.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(leg.wait(), 5)
        await self._clock.stop()
        if self._stack is not None:
            await self._stack.stop()

    def attach_recordings(self, recordings: RecordingUploader) -> None:
        self.recordings = recordings

    @property
    def clock(self) -> MediaClock:
        return self._clock

    def live_calls(self) -> int:
        """Calls not yet ended (a leg lingers after its end until SIP retransmissions are over)."""
        return sum(1 for leg in self._legs.values() if not leg.ended)

    @property
    def stack(self) -> SipStack:
        assert self._stack is not None
        return self._stack

    def admit(self, call: Call) -> None:
        self._gates[self._trunk_for(call).id].reserve()

    def withdraw(self, call: Call) -> None:
        self._gates[self._trunk_for(call).id].cancel_reservation()

    async def dial(self, call: Call) -> None:
        assert self._progress is not None
        trunk = self._trunk_for(call)
        self._legs[call.id] = CallLeg(
            call,
            trunk,
            settings=self.settings,
            clock=self._clock,
            progress=self._progress,
            sip_hangup=self.stack.hangup,
            recordings=self.recordings,
            resamplers=self._resamplers,
            on_done=self._leg_done,
            on_ended=self._leg_ended,
        )
        self._gates[trunk.id].enqueue(call.id, asyncio.get_running_loop().time())
        self._run_gates()

    async def release(self, call: Call) -> None:
        if call.sip_leg is None or call.id in self._releasing:
            return
        snapshot = LegSnapshot.from_json(call.sip_leg)
        trunk = next((t for t in self.settings.trunks if t.id == call.trunk_id), None)
        credentials = _credentials(trunk) if trunk is not None else None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._releasing[call.id] = done
        log.info("ending the carrier leg a previous run left up", extra={"call_id": call.id, "phase": snapshot.phase})
        self.stack.release(call.id, snapshot, credentials)
        try:
            # Timer F (64*T1) bounds the BYE or CANCEL; a little more for the loop itself.
            async with asyncio.timeout(64 * self.settings.sip.t1 + 5):
                await done
        finally:
            self._releasing.pop(call.id, None)

    async def hangup(self, call_id: str, cause: HangupCause) -> bool:
        leg = self._legs.get(call_id)
        if leg is None or leg.ended:
            return False
        if not leg.placed:
            # Still waiting for the trunk: nothing was sent, so nothing to cancel on the wire.
            self._gates[leg.trunk.id].remove(call_id)
            self._settle(leg, CallOutcome(CallStatus.CANCELLED, cause, HangupSide.LOCAL), released=True)
            return True
        leg.hangup(cause)
        if not leg.provisional:
            # RFC 3261 9.1: no CANCEL before a provisional response, and that may never
            # come (Timer B is 32 s). The caller's intent is final, so the call is settled
            # now; the user agent still cancels, or ACKs and BYEs a late 200, on its own.
            self._settle(leg, CallOutcome(CallStatus.CANCELLED, cause, HangupSide.LOCAL))
        return True

    def _settle(self, leg: CallLeg, outcome: CallOutcome, *, released: bool = False) -> None:
        leg.deliver(outcome)
        if released:
            leg.deliver(Released())

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
            turn = gate.due(now)
            for call_id in turn.expired:
                self._expire(call_id)
            for call_id in turn.ready:
                self._place(gate, call_id)
            if turn.wake is not None:
                wake = turn.wake if wake is None else min(wake, turn.wake)
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if wake is not None:
            self._pump = loop.call_at(wake, self._run_gates)

    def _expire(self, call_id: str) -> None:
        leg = self._legs.get(call_id)
        if leg is not None and not leg.ended:
            log.warning("call waited too long for its trunk", extra={"call_id": call_id})
            self._settle(
                leg, CallOutcome(CallStatus.FAILED, HangupCause.QUEUE_TIMEOUT, HangupSide.LOCAL), released=True
            )

    def _place(self, gate: TrunkGate, call_id: str) -> None:
        # The gate counted this call as active: the slot is given back when its leg is done.
        leg = self._legs.get(call_id)
        if leg is None:
            gate.release()
            return
        leg.holds_slot = True
        if leg.ended:
            self._release_slot(leg)
            return
        task = asyncio.get_running_loop().create_task(self._start_leg(leg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_leg(self, leg: CallLeg) -> None:
        token = call_id_var.set(leg.call.id)
        try:
            if not await self._bind_media(leg):
                log.error("no free RTP port; failing call")
                self._fail_unplaced(leg, HangupCause.MEDIA_UNAVAILABLE)
                return
            if leg.ended:  # hung up while the port was being bound
                self._fail_unplaced(leg, HangupCause.API_HANGUP)
                return
            try:
                params = self._params(leg)
                leg.placed = True
                self.stack.place_call(params)
            except (UaUsageError, SipError, ValueError) as exc:
                # A number or header the SIP layer cannot express: fail this call, keep the rest.
                log.error("cannot place call", extra={"error": str(exc)})
                leg.placed = False
                self._fail_unplaced(leg, HangupCause.REJECTED)
        finally:
            call_id_var.reset(token)

    async def _bind_media(self, leg: CallLeg) -> bool:
        for _ in range(16):
            try:
                port = self._ports.allocate()
            except PortsExhausted:
                return False
            try:
                await leg.open_media(port)
                return True
            except MediaPortBusy:
                # Held by another process: put it back at the end of the pool and try the next.
                self._ports.release(port)
        return False

    def _fail_unplaced(self, leg: CallLeg, cause: HangupCause) -> None:
        self._settle(leg, CallOutcome(CallStatus.FAILED, cause, HangupSide.LOCAL), released=True)

    def _leg_ended(self, leg: CallLeg) -> None:
        self._release_port(leg)
        self._release_slot(leg)

    def _leg_done(self, leg: CallLeg) -> None:
        self._release_port(leg)
        self._release_slot(leg)
        if self._legs.pop(leg.call.id, None) is not None and leg.session is not None:
            _add_playout(self._playout_done, leg.session.jitter_buffer_stats)

    def playout_frames(self) -> dict[str, int]:
        """Caller audio frames by playout outcome, over every call this process carried."""
        totals = Counter(self._playout_done)
        for leg in self._legs.values():
            if leg.session is not None:
                _add_playout(totals, leg.session.jitter_buffer_stats)
        return dict(totals)

    def _release_port(self, leg: CallLeg) -> None:
        if leg.rtp_port is not None and not leg.port_released:
            leg.port_released = True
            self._ports.release(leg.rtp_port)

    def _release_slot(self, leg: CallLeg) -> None:
        if leg.holds_slot:
            leg.holds_slot = False
            self._gates[leg.trunk.id].release()
            self._run_gates()

    def _params(self, leg: CallLeg) -> OutboundCallParams:
        trunk, call = leg.trunk, leg.call
        target = trunk.target
        number = call.to if trunk.number_format == "e164" else call.to.lstrip("+")
        user = f"{trunk.tech_prefix}{number}"
        host = self._trunk_addr.get(trunk.id, target.host)
        request_uri = SipUri.parse(
            f"sip:{user}@{_host_for_uri(target.host)}:{target.port};transport={target.transport}"
        )
        local_host = self.settings.sip.public_host or self.settings.sip.host
        credentials = _credentials(trunk)
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
        leg = self._legs.get(event.call_ref)
        if leg is not None:
            leg.deliver(event.event)
            return
        releasing = self._releasing.get(event.call_ref)
        if releasing is not None and isinstance(event.event, Ended) and not releasing.done():
            outcome = event.event.outcome
            log.info(
                "carrier leg ended",
                extra={"call_id": event.call_ref, "sip_status": outcome.sip_status},
            )
            releasing.set_result(None)


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _credentials(trunk: TrunkConfig) -> DigestCredentials | None:
    if trunk.username and trunk.password:
        return DigestCredentials(trunk.username, trunk.password.get_secret_value())
    return None


# The jitter buffer's counter behind each playout outcome, where the names differ.
_JB_COUNTER = {"underrun": "underruns"}


def _add_playout(totals: Counter[str], jb: JitterBufferStats) -> None:
    for outcome in metrics.PLAYOUT_OUTCOMES:
        totals[outcome] += getattr(jb, _JB_COUNTER.get(outcome, outcome))
