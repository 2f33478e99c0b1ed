"""SipDialer: the call backend that places calls through SIP trunks.

It keeps each trunk within its limits (`TrunkGate`), gives each call a `CallLeg` that owns
the call's runtime and decides its end, and passes what the SIP user agent reports to that
leg. It also ends, from what was stored, the carrier legs a crashed process left up
(`release`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.calls.backend import CallProgress, Cancellable, LoopTimers, Timers
from gateway.calls.leg import CallLeg
from gateway.calls.trunks import TrunkQueue
from gateway.config import AgentConfig, RtpConfig, SipConfig, TrunkConfig, route
from gateway.logs import call_id_var
from gateway.metrics import PLAYOUT_OUTCOMES, GatewayMetrics
from gateway.outcome import HangupCause
from gateway.recordings import RecordingUploader
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
)
from gateway.store.records import Call
from gateway.store.slots import LocalSlots, TrunkSlots
from media.clock import MediaClock
from media.jitterbuffer import JitterBufferStats
from media.ports import PortPool
from media.resample import FrameResamplers

log = logging.getLogger("gateway.dialer")

# How long settling a gone process's call waits for the far end to answer its BYE or CANCEL.
RELEASE_WAIT_SECONDS = 2.0


class Signalling(Protocol):
    """The SIP user agent as the dialer drives it (`gateway.sip.stack.SipStack`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def place_call(self, params: OutboundCallParams) -> None: ...

    def hangup(self, call_ref: str, cause: HangupCause) -> None: ...

    def release(self, call_ref: str, snapshot: LegSnapshot, credentials: DigestCredentials | None) -> None: ...


class SipDialer:
    def __init__(
        self,
        *,
        sip: SipConfig,
        rtp: RtpConfig,
        trunks: Sequence[TrunkConfig],
        agents: Sequence[AgentConfig],
        progress: CallProgress,
        recordings: RecordingUploader | None,
        metrics: GatewayMetrics,
        slots: TrunkSlots | None = None,
        timers: Timers | None = None,
        stack: Signalling | None = None,
    ) -> None:
        self._sip = sip
        self._rtp = rtp
        self._trunks = {t.id: t for t in trunks}
        self._agents = {a.id: a for a in agents}
        self._progress = progress
        self._recordings = recordings
        self._metrics = metrics
        self._timers = timers or LoopTimers()
        self._slots: TrunkSlots = slots if slots is not None else LocalSlots()
        self._queues = {t.id: TrunkQueue(t) for t in trunks}
        self._pumping: set[str] = set()
        self._wakeups: dict[str, Cancellable] = {}
        self._legs: dict[str, CallLeg] = {}
        self._ports = PortPool(rtp.port_min, rtp.port_max)
        # Calls spread over 4 groups 5 ms apart: each call keeps its 20 ms grid, but the
        # packets of all calls (and the far ends' echoes of them) do not come in one burst.
        self._clock = MediaClock(phases=4, on_lateness=metrics.clock_lateness)
        # Agent audio not at 8 kHz: every call's frames resampled in one batch per tick phase.
        self._resamplers = FrameResamplers()
        self._clock.add_batch(self._resamplers.run)
        self._trusted: set[str] = set()
        self._trunk_addr: dict[str, str] = {}
        # Playout counters of the calls whose legs are gone (live ones are read from their sessions).
        self._playout_done: Counter[str] = Counter()
        # Calls a previous process carried, being ended on the wire: call id -> its Ended.
        self._releasing: dict[str, asyncio.Future[None]] = {}
        self._stack = stack or self._sip_stack()
        metrics.watch_playout(self.playout_frames)

    def _sip_stack(self) -> SipStack:
        sip = self._sip
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
        return SipStack(config, sip.host, self.on_call_event, tcp_limits=limits, metrics=self._metrics)

    # --- CallBackend -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._resolve_trunks()
        await self._stack.start()
        self._clock.start()

    async def stop(self) -> None:
        for wakeup in self._wakeups.values():
            wakeup.cancel()
        for leg in list(self._legs.values()):
            leg.deliver(Released())
        for leg in list(self._legs.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(leg.wait(), 5)
        await self._clock.stop()
        await self._stack.stop()

    @property
    def clock(self) -> MediaClock:
        return self._clock

    @property
    def stack(self) -> Signalling:
        return self._stack

    def live_calls(self) -> int:
        """Calls whose end is not known yet (a leg lingers after its end until SIP retransmissions are over)."""
        return sum(1 for leg in self._legs.values() if leg.live)

    async def dial(self, call: Call) -> None:
        trunk = self._trunk_for(call)
        agent = self._agents.get(call.agent_id) if call.agent_id else None
        self._legs[call.id] = CallLeg(
            call,
            trunk,
            agent=agent,
            media_host=self._sip.host,
            rtp=self._rtp,
            ports=self._ports,
            clock=self._clock,
            timers=self._timers,
            signalling=self,
            progress=self._progress,
            recordings=self._recordings,
            metrics=self._metrics,
            resamplers=self._resamplers,
            on_ended=self._leg_ended,
            on_released=self._leg_released,
        )
        self._queues[trunk.id].add(call.id, self._timers.time())
        self._kick(trunk)

    async def hangup(self, call_id: str, cause: HangupCause) -> bool:
        leg = self._legs.get(call_id)
        return leg is not None and leg.hangup(cause)

    async def release(self, call: Call) -> None:
        if call.sip_leg is None or call.id in self._releasing:
            return
        snapshot = LegSnapshot.from_json(call.sip_leg)
        trunk = self._trunks.get(call.trunk_id or "")
        credentials = _credentials(trunk) if trunk is not None else None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._releasing[call.id] = done
        log.info("ending the carrier leg a previous run left up", extra={"call_id": call.id, "phase": snapshot.phase})
        self._stack.release(call.id, snapshot, credentials)
        try:
            # A carrier answers a BYE or CANCEL in milliseconds; the call is not kept waiting
            # for one that does not (the user agent goes on retransmitting until Timer F).
            async with asyncio.timeout(RELEASE_WAIT_SECONDS):
                await done
        except TimeoutError:
            log.warning("no answer to the BYE or CANCEL yet; settling the call anyway", extra={"call_id": call.id})
        finally:
            self._releasing.pop(call.id, None)

    # --- Signalling, for the legs -----------------------------------------------------------

    def place(self, leg: CallLeg) -> None:
        try:
            self._stack.place_call(self._params(leg))
        except SipError as exc:
            raise ValueError(str(exc)) from exc

    def send_hangup(self, call_id: str, cause: HangupCause) -> None:
        self._stack.hangup(call_id, cause)

    # --- trunks -----------------------------------------------------------------------------

    def _trunk_for(self, call: Call) -> TrunkConfig:
        trunk = self._trunks.get(call.trunk_id or "") or route(list(self._trunks.values()), call.to)
        assert trunk is not None, "calls are only created with a route"
        return trunk

    def _kick(self, trunk: TrunkConfig) -> None:
        """Look at the trunk's queue now (a call came, a slot freed, a wait is over)."""
        wakeup = self._wakeups.pop(trunk.id, None)
        if wakeup is not None:
            wakeup.cancel()
        if trunk.id not in self._pumping:
            self._pumping.add(trunk.id)
            asyncio.get_running_loop().create_task(self._pump(trunk), name=f"trunk-{trunk.id}")

    async def _pump(self, trunk: TrunkConfig) -> None:
        """Give slots to the queue's calls in order while the trunk has them; then sleep until
        the rate allows the next, the head of the queue gives up, or a slot frees up."""
        queue = self._queues[trunk.id]
        try:
            while True:
                now = self._timers.time()
                for call_id in queue.expired(now):
                    leg = self._legs.get(call_id)
                    if leg is not None:
                        log.warning("call waited too long for its trunk", extra={"call_id": call_id})
                        leg.give_up(HangupCause.QUEUE_TIMEOUT)
                head = queue.head()
                if head is None:
                    return
                grant = await self._slots.acquire(trunk, head, now)
                if grant.ok:
                    if queue.head() == head:
                        queue.pop()
                    self._place(trunk, head)
                    continue
                wake = min(t for t in (grant.retry_at, queue.next_give_up()) if t is not None)
                self._wakeups[trunk.id] = self._timers.call_at(wake, lambda: self._kick(trunk))
                return
        finally:
            self._pumping.discard(trunk.id)

    def _place(self, trunk: TrunkConfig, call_id: str) -> None:
        # The call holds a slot now: its leg gives it back (once) when its carrier leg is over.
        release = _Once(lambda: self._release_slot(trunk, call_id))
        leg = self._legs.get(call_id)
        if leg is None:
            release()
            return
        token = call_id_var.set(call_id)
        try:
            leg.place(release)
        finally:
            call_id_var.reset(token)

    def _release_slot(self, trunk: TrunkConfig, call_id: str) -> None:
        self._slots.release(trunk, call_id)
        self._kick(trunk)

    # --- legs -------------------------------------------------------------------------------

    def _leg_ended(self, leg: CallLeg) -> None:
        # Ended while it waited in the queue: its place there goes too.
        if self._queues[leg.trunk.id].remove(leg.call.id):
            self._kick(leg.trunk)

    def _leg_released(self, leg: CallLeg) -> None:
        if self._legs.pop(leg.call.id, None) is not None and leg.session is not None:
            _add_playout(self._playout_done, leg.session.jitter_buffer_stats)

    def playout_frames(self) -> dict[str, int]:
        """Caller audio frames by playout outcome, over every call this process carried."""
        totals = Counter(self._playout_done)
        for leg in self._legs.values():
            if leg.session is not None:
                _add_playout(totals, leg.session.jitter_buffer_stats)
        return dict(totals)

    def _params(self, leg: CallLeg) -> OutboundCallParams:
        trunk, call = leg.trunk, leg.call
        target = trunk.target
        number = call.to if trunk.number_format == "e164" else call.to.lstrip("+")
        user = f"{trunk.tech_prefix}{number}"
        host = self._trunk_addr.get(trunk.id, target.host)
        request_uri = SipUri.parse(
            f"sip:{user}@{_host_for_uri(target.host)}:{target.port};transport={target.transport}"
        )
        local_host = self._sip.public_host or self._sip.host
        assert leg.rtp_port is not None
        return OutboundCallParams(
            call_ref=call.id,
            request_uri=request_uri,
            destination=(host, target.port),
            transport=target.transport,
            from_uri=SipUri.parse(f"sip:{call.from_}@{_host_for_uri(local_host)}"),
            to_uri=SipUri.parse(f"sip:{user}@{_host_for_uri(target.host)}"),
            local_media=LocalMedia(address=local_host, rtp_port=leg.rtp_port, codecs=tuple(trunk.codecs)),
            credentials=_credentials(trunk),
            ring_timeout=trunk.ring_timeout_seconds,
            session_expires=self._sip.session_expires_seconds,
            min_se=self._sip.min_se_seconds,
        )

    async def _resolve_trunks(self) -> None:
        loop = asyncio.get_running_loop()
        for trunk in self._trunks.values():
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

    def on_call_event(self, event: CallEvent) -> None:
        leg = self._legs.get(event.call_ref)
        if leg is not None:
            leg.deliver(event.event)
            return
        releasing = self._releasing.get(event.call_ref)
        if releasing is not None and isinstance(event.event, Ended) and not releasing.done():
            outcome = event.event.outcome
            log.info("carrier leg ended", extra={"call_id": event.call_ref, "sip_status": outcome.sip_status})
            releasing.set_result(None)


class _Once:
    """A callback that runs at most once (a trunk slot is given back once)."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback: Callable[[], None] | None = callback

    def __call__(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _credentials(trunk: TrunkConfig) -> DigestCredentials | None:
    if trunk.username and trunk.password:
        return DigestCredentials(trunk.username, trunk.password.get_secret_value())
    return None


# The jitter buffer's counter behind each playout outcome, where the names differ.
_JB_COUNTER = {"underrun": "underruns"}


def _add_playout(totals: Counter[str], jb: JitterBufferStats) -> None:
    for outcome in PLAYOUT_OUTCOMES:
        totals[outcome] += getattr(jb, _JB_COUNTER.get(outcome, outcome))
