"""CallLeg: one outbound call's runtime, from its place in the trunk queue to the uploaded recording.

It owns the call's resources (its trunk slot once dialled, its RTP port, media session,
agent bridge, recorder) and its state, a `LegState` changed only through `_move`, which
refuses any transition not in `TRANSITIONS`. What the SIP user agent reports and what the
gateway asks (hang up, give up waiting) arrive here and are handled in order on the leg's
own task, so a slow agent shutdown never holds up other calls. How a call ends is decided
here: by the user agent's `CallOutcome`, or by `gateway.calls.ending` when we end it with
no SIP answer to go by.

    QUEUED ──place──▶ BINDING ──INVITE──▶ INVITING ──1xx──▶ EARLY ──2xx──▶ ANSWERED
       │                 │                   │                │               │
       │ hangup,         │ no port,          │ hangup: the    │ hangup        │ hangup
       │ queue timeout   │ hangup,           │ call is        ▼               ▼
       │                 │ cannot place      │ settled now  CANCELLING     HANGING_UP (agent stop, grace, BYE)
       ▼                 ▼                   ▼                │               │
     ENDING ◀────────────┴───────────────────┴── Ended ◀──────┴───────────────┘
       │  agent stopped, media and recording closed, final status stored
       ▼
     ENDED ──Released (SIP transactions over; at once if never placed)──▶ RELEASED

Ending order, whoever ends the call: API hangup / max duration: the agent gets `stop` and
its grace, then BYE (CANCEL before answer). Remote BYE, media timeout: the agent gets `stop`
at once. Then media and recording closed, the final status stored, the recording submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from gateway.calls.backend import CallProgress, Cancellable, Timers
from gateway.calls.ending import end_by_us, settled
from gateway.config import AgentConfig, RtpConfig, TrunkConfig
from gateway.logs import call_id_var
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallOutcome, HangupCause, HangupSide
from gateway.recordings import RecordingUploader
from gateway.sip.useragent import (
    Answered,
    DtmfReceived,
    Ended,
    LegUpdated,
    MediaUpdated,
    Released,
    Ringing,
    Trying,
)
from gateway.store.records import Call
from media.agent.bridge import AgentBridge, AgentUnavailable
from media.clock import MediaClock
from media.endpoint import MediaPortBusy
from media.negotiated import NegotiatedMedia
from media.ports import PortPool, PortsExhausted
from media.recording import StereoRecorder
from media.resample import FrameResamplers
from media.session import MediaConfig, MediaSession

log = logging.getLogger("gateway.leg")


class LegState(enum.Enum):
    QUEUED = "queued"  # stored, waiting for its trunk (concurrency, rate)
    BINDING = "binding"  # holds a trunk slot, binding its RTP port
    INVITING = "inviting"  # INVITE sent, no provisional response yet
    EARLY = "early"  # a provisional response came: ringing, a CANCEL is possible
    ANSWERED = "answered"  # 2xx: media, agent and recording run
    CANCELLING = "cancelling"  # we hung up while it rang: CANCEL, waiting for the INVITE to end
    HANGING_UP = "hanging_up"  # we hung up after answer: agent stop, grace, BYE
    ENDING = "ending"  # the outcome is known: tearing down and storing it
    ENDED = "ended"  # final status stored; SIP transactions may still linger
    RELEASED = "released"  # nothing left: the leg is gone


S = LegState
TRANSITIONS: dict[LegState, frozenset[LegState]] = {
    S.QUEUED: frozenset({S.BINDING, S.ENDING}),
    S.BINDING: frozenset({S.INVITING, S.ENDING}),
    S.INVITING: frozenset({S.EARLY, S.ANSWERED, S.ENDING}),
    S.EARLY: frozenset({S.ANSWERED, S.CANCELLING, S.ENDING}),
    S.ANSWERED: frozenset({S.HANGING_UP, S.ENDING}),
    S.CANCELLING: frozenset({S.ENDING}),
    S.HANGING_UP: frozenset({S.ENDING}),
    S.ENDING: frozenset({S.ENDED}),
    S.ENDED: frozenset({S.RELEASED}),
    S.RELEASED: frozenset(),
}
_LIVE = frozenset({S.QUEUED, S.BINDING, S.INVITING, S.EARLY, S.ANSWERED, S.CANCELLING, S.HANGING_UP})


class LegStateError(RuntimeError):
    """A transition the table does not allow: a bug in the leg, never the far end's doing."""


# Why the agent is told to stop, by the cause that ends the call.
_STOP_REASON = {
    HangupCause.API_HANGUP: "api_hangup",
    HangupCause.AGENT_HANGUP: "api_hangup",
    HangupCause.MAX_DURATION: "max_duration",
    HangupCause.REMOTE_HANGUP: "remote_hangup",
    HangupCause.NORMAL_CLEARING: "remote_hangup",
}


class Signalling(Protocol):
    """What the leg asks of the SIP side (the dialer, over its user agent)."""

    def place(self, leg: CallLeg) -> None:
        """Send the INVITE; raises ValueError for a call the SIP layer cannot express."""
        ...

    def send_hangup(self, call_id: str, cause: HangupCause) -> None:
        """CANCEL (after a provisional response) or BYE; the outcome comes back as `Ended`."""
        ...


class CallLeg:
    def __init__(
        self,
        call: Call,
        trunk: TrunkConfig,
        *,
        agent: AgentConfig | None,
        media_host: str,
        rtp: RtpConfig,
        ports: PortPool,
        clock: MediaClock,
        timers: Timers,
        signalling: Signalling,
        progress: CallProgress,
        recordings: RecordingUploader | None,
        metrics: GatewayMetrics,
        resamplers: FrameResamplers | None = None,
        on_ended: Callable[[CallLeg], None] | None = None,
        on_released: Callable[[CallLeg], None] | None = None,
    ) -> None:
        self.call = call
        self.trunk = trunk
        self.agent = agent
        self._media_host = media_host
        self._rtp = rtp
        self._ports = ports
        self.clock = clock
        self._timers = timers
        self._signalling = signalling
        self.progress = progress
        self.recordings = recordings
        self._metrics = metrics
        self.resamplers = resamplers
        self._on_ended = on_ended
        self._on_released = on_released
        self.state = LegState.QUEUED
        self.rtp_port: int | None = None
        self.session: MediaSession | None = None
        self.bridge: AgentBridge | None = None
        self.recorder: StereoRecorder | None = None
        self._release_slot: Callable[[], None] | None = None  # set while the leg holds a trunk slot
        self._on_clock = False
        self._in_user_agent = False
        self._hangup_cause: HangupCause | None = None  # asked for while binding
        self._connect: asyncio.Task[None] | None = None
        self._max_duration: Cancellable | None = None
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._facts: dict[str, Any] = {}  # for the record, written with the next status change
        self._last_write: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"leg-{call.id}")

    # --- state ------------------------------------------------------------------------------

    def _move(self, to: LegState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise LegStateError(f"call leg cannot go from {self.state.value} to {to.value}")
        log.debug("leg state", extra={"call_id": self.call.id, "from": self.state.value, "to": to.value})
        self.state = to

    @property
    def live(self) -> bool:
        """Not yet ending (the outcome is not known)."""
        return self.state in _LIVE

    # --- what the dialer asks -------------------------------------------------------------------

    def place(self, release_slot: Callable[[], None]) -> None:
        """Its trunk has a slot for it: bind the RTP port and send the INVITE (on the leg's task)."""
        self._release_slot = release_slot
        self._events.put_nowait(_Place())

    def give_up(self, cause: HangupCause) -> None:
        """It waited too long for its trunk."""
        self._events.put_nowait(_EndByUs(cause))

    def hangup(self, cause: HangupCause) -> bool:
        """End the call for a local reason; False when its end is already known."""
        if not self.live:
            return self.state is S.ENDING
        self._events.put_nowait(_Hangup(cause))
        return True

    def deliver(self, event: object) -> None:
        """An event of the SIP user agent for this call."""
        # Media is applied at once, not on the leg's task: the far end starts sending RTP
        # right after our ACK, and its first packets must find the session configured.
        if isinstance(event, Answered | MediaUpdated):
            self._use_media(event.media)
        elif isinstance(event, Ringing) and event.early_media is not None:
            self._use_media(event.early_media)
        self._events.put_nowait(event)

    async def wait(self) -> None:
        await self._task

    # --- the leg's task -------------------------------------------------------------------------

    async def _run(self) -> None:
        token = call_id_var.set(self.call.id)
        try:
            while self.state is not S.RELEASED:
                event = await self._events.get()
                try:
                    await self._handle(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("call event failed", extra={"event": type(event).__name__})
                if isinstance(event, Released):
                    break  # the user agent holds nothing more for this call (or is shutting down)
        finally:
            call_id_var.reset(token)
            await self._teardown()
            if self._on_released is not None:
                self._on_released(self)

    async def _handle(self, event: object) -> None:
        if isinstance(event, _Place):
            await self._place()
        elif isinstance(event, _Hangup):
            await self._hangup(event.cause)
        elif isinstance(event, _EndByUs):
            if self.live:
                await self._finish(end_by_us(event.cause, answered=self.state in (S.ANSWERED, S.HANGING_UP)))
        elif isinstance(event, Trying):
            self._facts["sip_call_id"] = event.sip_call_id  # written with the next status change
        elif isinstance(event, Ringing):
            if self.state is S.INVITING:
                self._move(S.EARLY)
            if self.state is S.EARLY:
                self._connect_agent()
                self._record(self.progress.ringing, self.call.id, event.status, **self._take_facts())
        elif isinstance(event, Answered):
            if self.state in (S.INVITING, S.EARLY):
                self._move(S.ANSWERED)
                # The caller is on the line: audio first, the status write after (the store
                # may be slow under load, and the agent must not wait for it).
                await self._start_recording()
                await self._start_agent()
                self._arm_max_duration()
                self._record(self.progress.answered, self.call.id, **self._take_facts())
        elif isinstance(event, LegUpdated):
            leg = event.snapshot.to_json()
            if self.state in (S.ANSWERED, S.HANGING_UP):
                # A refresh moved the dialog's CSeq or target: rare (minutes apart), stored at once.
                self._record(self.progress.update, self.call.id, sip_leg=leg)
            elif self.live:
                self._facts["sip_leg"] = leg  # stored with the next status change
        elif isinstance(event, DtmfReceived):
            if self.bridge is not None:
                self.bridge.on_dtmf(event.digit, event.duration_ms)
        elif isinstance(event, Ended):
            if self.live:
                await self._finish(settled(event.outcome))
        elif isinstance(event, Released) and self.state is S.ENDED:
            self._move(S.RELEASED)

    # --- placing --------------------------------------------------------------------------------

    async def _place(self) -> None:
        if self.state is not S.QUEUED:
            self._free_slot()  # ended while it waited for the slot
            return
        self._move(S.BINDING)
        if not await self._bind_media():
            log.error("no free RTP port; failing call")
            await self._finish(end_by_us(HangupCause.MEDIA_UNAVAILABLE, answered=False))
            return
        if self._hangup_cause is not None:  # hung up while the port was being bound
            await self._finish(end_by_us(self._hangup_cause, answered=False))
            return
        try:
            self._signalling.place(self)
            self._in_user_agent = True  # until it reports Released
        except ValueError as exc:
            # A number or header the SIP layer cannot express: fail this call, keep the rest.
            log.error("cannot place call", extra={"error": str(exc)})
            await self._finish(end_by_us(HangupCause.REJECTED, answered=False))
            return
        self._move(S.INVITING)

    async def _bind_media(self) -> bool:
        for _ in range(16):
            try:
                port = self._ports.allocate()
            except PortsExhausted:
                return False
            config = MediaConfig(
                local_address=self._media_host,
                media_timeout=self._rtp.media_timeout_seconds,
                hold_timeout=self._rtp.hold_timeout_seconds,
            )
            session = MediaSession(
                self.call.id, port, config, on_dtmf=self._on_media_dtmf, on_media_timeout=self._on_media_timeout
            )
            try:
                await session.open()
            except MediaPortBusy:
                # Held by another process: back to the end of the pool, try the next one.
                self._ports.release(port)
                continue
            self.session, self.rtp_port = session, port
            return True
        return False

    # --- ending ---------------------------------------------------------------------------------

    async def _hangup(self, cause: HangupCause) -> None:
        state = self.state
        if state is S.QUEUED:
            await self._finish(end_by_us(cause, answered=False))
        elif state is S.BINDING:
            self._hangup_cause = cause  # decided once the port is bound
        elif state is S.INVITING:
            # RFC 3261 9.1: no CANCEL before a provisional response, and that may never come
            # (Timer B is 32 s). The caller's intent is final, so the call is settled now;
            # the user agent still cancels, or ACKs and BYEs a late 200, on its own.
            self._signalling.send_hangup(self.call.id, cause)
            await self._finish(end_by_us(cause, answered=False))
        elif state is S.EARLY:
            self._move(S.CANCELLING)
            self._signalling.send_hangup(self.call.id, cause)
        elif state is S.ANSWERED:
            self._move(S.HANGING_UP)
            self._spawn(self._graceful_bye(cause))

    async def _graceful_bye(self, cause: HangupCause) -> None:
        if self.bridge is not None and cause is not HangupCause.AGENT_UNAVAILABLE:
            # The agent hears `stop` and gets its grace before the caller hears BYE.
            await self.bridge.stop(_STOP_REASON.get(cause, "error"))
        if self.state is S.HANGING_UP:
            self._signalling.send_hangup(self.call.id, cause)

    def _ask_hangup(self, cause: HangupCause) -> None:
        """A local reason to end the call, from a callback (agent, media, timer)."""
        if self.live:
            self._events.put_nowait(_Hangup(cause))

    async def _finish(self, outcome: CallOutcome) -> None:
        self._move(S.ENDING)
        if self._max_duration is not None:
            self._max_duration.cancel()
        # The leg is over: nothing is left for another node to end.
        extra: dict[str, Any] = {"sip_leg": None}
        self._facts.pop("sip_leg", None)
        if self.bridge is not None:
            await self._stop_agent(outcome)
            extra["agent_summary"] = self.bridge.summary()
            connect_ms = extra["agent_summary"].get("connect_ms")
            if connect_ms is not None:
                self._metrics.agent_connected(connect_ms / 1000)
        recording = await self._stop_media()
        if self.session is not None:
            extra["media_stats"] = _jsonable(self.session.stats())
            self._metrics.media_stats(extra["media_stats"])
            with contextlib.suppress(Exception):
                await self.session.close()
        # The call is over for the carrier: its trunk slot and RTP port are free now,
        # while the SIP transactions linger (up to 64*T1) to absorb retransmissions.
        self._free_slot()
        self._free_port()
        if self._on_ended is not None:
            self._on_ended(self)
        if self._last_write is not None:
            await self._last_write  # ringing and answered are stored before the end
        await self.progress.ended(self.call.id, outcome, **self._take_facts(), **extra)
        self._move(S.ENDED)
        if self.recordings is not None and self.call.record:
            if recording is not None:
                await self.recordings.submit(self.call.id, recording)
            else:
                await self.recordings.mark_not_recorded(self.call.id)
        if not self._in_user_agent:
            self._move(S.RELEASED)  # never placed: no SIP transaction to wait for

    def _free_slot(self) -> None:
        release, self._release_slot = self._release_slot, None
        if release is not None:
            release()

    def _free_port(self) -> None:
        port, self.rtp_port = self.rtp_port, None
        if port is not None:
            self._ports.release(port)

    # --- records ----------------------------------------------------------------------------

    def _record(self, write: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any) -> None:
        """Store a status change in order, without holding up this leg's events: under load the
        store may take seconds, and the answer (audio to the agent) must not wait for a ringing write."""
        previous = self._last_write

        async def run() -> None:
            if previous is not None:
                await previous
            try:
                await write(*args, **kwargs)
            except Exception:
                log.exception("storing the call's progress failed")

        self._last_write = asyncio.get_running_loop().create_task(run())

    def _take_facts(self) -> dict[str, Any]:
        facts, self._facts = self._facts, {}
        return facts

    # --- media ------------------------------------------------------------------------------

    def _use_media(self, media: NegotiatedMedia) -> None:
        if self.session is None or not self.live:
            return
        self.session.set_remote(media)
        if not self._on_clock:
            self.clock.add(self.session)
            self._on_clock = True

    def _on_media_dtmf(self, digit: str, duration_ms: int) -> None:
        if self.bridge is not None:
            self.bridge.on_dtmf(digit, duration_ms)

    def _on_media_timeout(self) -> None:
        log.warning("no RTP received: ending the call")
        self._ask_hangup(HangupCause.MEDIA_TIMEOUT)

    async def _stop_media(self) -> str | None:
        if self.session is not None and self._on_clock:
            self.clock.remove(self.session)
            self._on_clock = False
        if self.recorder is None:
            return None
        recorder, self.recorder = self.recorder, None
        if self.session is not None:
            self.session.remove_observer(recorder)
        now = asyncio.get_running_loop().time()
        try:
            info = await asyncio.to_thread(recorder.close, now)
        except Exception:
            log.exception("closing the recording failed")
            return None
        return str(info.path)

    async def _start_recording(self) -> None:
        if not self.call.record or self.recordings is None or self.session is None:
            return
        try:
            self.recorder = await self.recordings.open_recorder(self.call)
        except OSError:
            log.exception("cannot open the recording file; the call goes on unrecorded")
            return
        self.session.add_observer(self.recorder)

    def _arm_max_duration(self) -> None:
        # Counted from answer: the talk time is what the limit protects.
        when = self._timers.time() + self.call.max_duration
        self._max_duration = self._timers.call_at(when, lambda: self._ask_hangup(HangupCause.MAX_DURATION))

    # --- agent ------------------------------------------------------------------------------

    def _connect_agent(self) -> None:
        """Open the agent's websocket while the call rings, so its first words are ready at answer."""
        if self.agent is None or self.bridge is not None:
            return
        self.bridge = AgentBridge(
            self.agent.endpoint(),
            call_id=self.call.id,
            account_id=self.call.account_id,
            from_=self.call.from_,
            to=self.call.to,
            metadata=self.call.metadata,
            on_hangup_request=self._on_agent_hangup,
            on_agent_lost=self._on_agent_lost,
            resamplers=self.resamplers,
        )
        self._connect = asyncio.get_running_loop().create_task(self.bridge.connect())

    async def _start_agent(self) -> None:
        if self.agent is None:
            return
        self._connect_agent()
        assert self.bridge is not None and self._connect is not None and self.session is not None
        try:
            await self._connect
        except AgentUnavailable as exc:
            log.warning("agent unavailable at answer", extra={"reason": exc.reason, "agent_id": self.agent.id})
            if self.agent.on_failure == "hangup":
                self._ask_hangup(HangupCause.AGENT_UNAVAILABLE)
            return
        self.session.add_sink(self.bridge)
        self.session.set_source(self.bridge)
        self.bridge.start_media(asyncio.get_running_loop().time(), send_dtmf=self.session.send_dtmf)

    def _on_agent_hangup(self, cause: str) -> None:
        self._ask_hangup(HangupCause.AGENT_HANGUP)

    def _on_agent_lost(self, reason: str) -> None:
        log.warning("agent lost", extra={"reason": reason})
        if self.agent is not None and self.agent.on_failure == "hangup":
            self._ask_hangup(HangupCause.AGENT_UNAVAILABLE)

    async def _stop_agent(self, outcome: CallOutcome) -> None:
        assert self.bridge is not None
        if self.session is not None:
            self.session.set_source(None)
            self.session.remove_sink(self.bridge)
        if self._connect is not None and not self._connect.done():
            self._connect.cancel()
        reason = _STOP_REASON.get(outcome.cause, "error")
        if outcome.side is HangupSide.REMOTE:
            reason = "remote_hangup"
        with contextlib.suppress(Exception):
            await self.bridge.stop(reason)

    # --- teardown ---------------------------------------------------------------------------

    async def _teardown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._connect is not None and not self._connect.done():
            self._connect.cancel()
        if self.bridge is not None and self.state is not S.ENDED and self.state is not S.RELEASED:
            with contextlib.suppress(Exception):
                await self.bridge.stop("error")
        await self._stop_media()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()
        self._free_slot()
        self._free_port()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Place:
    """The dialer gave the leg a trunk slot."""


class _Hangup:
    def __init__(self, cause: HangupCause) -> None:
        self.cause = cause


class _EndByUs:
    """End now, for a cause of ours, with no SIP dialogue (the call was never dialled)."""

    def __init__(self, cause: HangupCause) -> None:
        self.cause = cause


def _jsonable(stats: dict[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            out[key] = _jsonable(value)
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
        else:
            out[key] = str(value)
    return out
