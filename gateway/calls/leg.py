"""CallLeg: one outbound call's runtime, from INVITE to the uploaded recording.

It owns the call's RTP session (bound before the INVITE offers its port), its agent
bridge (connected while the call rings), and its recorder (from answer), and it
turns what the SIP user agent reports into status changes for the CallService.
Each leg handles its events on its own task, in order, so a slow agent shutdown
never holds up other calls.

Ending order, whoever ends the call:
  API hangup / max duration: agent gets `stop`, a short grace, then BYE (CANCEL before answer).
  Remote BYE, media timeout: agent gets `stop` at once.
  Then: media closed, recording closed, final status stored, recording submitted for upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from gateway import metrics
from gateway.calls.backend import CallProgress
from gateway.calls.model import Call
from gateway.config import AgentConfig, Settings, TrunkConfig
from gateway.logs import call_id_var
from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
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
from media.agent.bridge import AgentBridge, AgentUnavailable
from media.clock import MediaClock
from media.negotiated import NegotiatedMedia
from media.recording import StereoRecorder
from media.resample import FrameResamplers
from media.session import MediaConfig, MediaSession

if TYPE_CHECKING:
    from gateway.recordings import RecordingUploader

log = logging.getLogger("gateway.leg")

# Why the agent is told to stop, by the cause that ends the call.
_STOP_REASON = {
    HangupCause.API_HANGUP: "api_hangup",
    HangupCause.AGENT_HANGUP: "api_hangup",
    HangupCause.MAX_DURATION: "max_duration",
    HangupCause.REMOTE_HANGUP: "remote_hangup",
    HangupCause.NORMAL_CLEARING: "remote_hangup",
}


class CallLeg:
    def __init__(
        self,
        call: Call,
        trunk: TrunkConfig,
        *,
        settings: Settings,
        clock: MediaClock,
        progress: CallProgress,
        sip_hangup: Callable[[str, HangupCause], None],
        recordings: RecordingUploader | None,
        on_done: Callable[[CallLeg], None],
        resamplers: FrameResamplers | None = None,
        on_ended: Callable[[CallLeg], None] | None = None,
    ) -> None:
        self.call = call
        self.trunk = trunk
        self.settings = settings
        self.clock = clock
        self.progress = progress
        self._sip_hangup = sip_hangup
        self.recordings = recordings
        self.resamplers = resamplers
        self._on_done = on_done
        self._on_ended = on_ended
        self.agent: AgentConfig | None = settings.agent(call.agent_id) if call.agent_id else None
        self.rtp_port: int | None = None
        self.port_released = False
        self.session: MediaSession | None = None
        self.bridge: AgentBridge | None = None
        self.recorder: StereoRecorder | None = None
        self.placed = False
        self.holds_slot = False  # counted against its trunk's max_concurrent
        self.provisional = False
        self.answered = False
        self.ended = False
        self.reported = False
        self._on_clock = False
        self._connect: asyncio.Task[None] | None = None
        self._max_duration: asyncio.TimerHandle | None = None
        self._fail_cause: HangupCause | None = None
        self._hanging_up = False
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._facts: dict[str, Any] = {}  # for the record, written with the next status change
        self._last_write: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"leg-{call.id}")
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- set-up -----------------------------------------------------------------------------

    async def open_media(self, port: int) -> None:
        """Bind the call's RTP/RTCP ports (MediaPortBusy if another process holds them)."""
        rtp = self.settings.rtp
        config = MediaConfig(
            local_address=self.settings.sip.host,
            media_timeout=rtp.media_timeout_seconds,
            hold_timeout=rtp.hold_timeout_seconds,
        )
        session = MediaSession(
            self.call.id, port, config, on_dtmf=self._on_media_dtmf, on_media_timeout=self._on_media_timeout
        )
        await session.open()
        self.session = session
        self.rtp_port = port

    # --- events from the SIP user agent (in order, on this leg's task) -----------------------

    def deliver(self, event: object) -> None:
        # Media is applied at once, not on the leg's task: the far end starts sending RTP
        # right after our ACK, and its first packets must find the session configured.
        if isinstance(event, Answered | MediaUpdated):
            self._use_media(event.media)
        elif isinstance(event, Ringing) and event.early_media is not None:
            self._use_media(event.early_media)
        self._events.put_nowait(event)

    async def _run(self) -> None:
        token = call_id_var.set(self.call.id)
        try:
            while True:
                event = await self._events.get()
                try:
                    done = await self._handle(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("call event failed", extra={"event": type(event).__name__})
                    done = isinstance(event, Released)
                if done:
                    break
        finally:
            call_id_var.reset(token)
            await self._teardown()
            self._on_done(self)

    async def _handle(self, event: object) -> bool:
        if isinstance(event, Trying):
            self._facts["sip_call_id"] = event.sip_call_id  # written with the next status change
        elif isinstance(event, Ringing):
            self.provisional = True
            self._connect_agent()
            self._record(self.progress.ringing, self.call.id, event.status, **self._take_facts())
        elif isinstance(event, Answered):
            self.provisional = self.answered = True
            # The caller is on the line: audio first, the status write after (the store
            # may be slow under load, and the agent must not wait for it).
            await self._start_recording()
            await self._start_agent()
            self._arm_max_duration()
            self._record(self.progress.answered, self.call.id, **self._take_facts())
        elif isinstance(event, LegUpdated):
            leg = event.snapshot.to_json()
            if self.answered:
                # A refresh moved the dialog's CSeq or target: rare (minutes apart), stored at once.
                self._record(self.progress.update, self.call.id, sip_leg=leg)
            else:
                self._facts["sip_leg"] = leg  # stored with the next status change
        elif isinstance(event, DtmfReceived):
            if self.bridge is not None:
                self.bridge.on_dtmf(event.digit, event.duration_ms)
        elif isinstance(event, Ended):
            await self._finish(self._outcome(event.outcome))
        elif isinstance(event, CallOutcome):
            # Settled by the gateway itself (no SIP dialog to wait for).
            await self._finish(event)
        elif isinstance(event, Released):
            return True
        return False

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

    def _use_media(self, media: NegotiatedMedia) -> None:
        if self.session is None:
            return
        self.session.set_remote(media)
        if not self._on_clock:
            self.clock.add(self.session)
            self._on_clock = True

    # --- agent --------------------------------------------------------------------------------

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
            log.warning(
                "agent unavailable at answer", extra={"reason": exc.reason, "agent_id": self.agent.id}
            )
            if self.agent.on_failure == "hangup":
                self._fail_cause = HangupCause.AGENT_UNAVAILABLE
                self.hangup(HangupCause.AGENT_UNAVAILABLE)
            return
        self.session.add_sink(self.bridge)
        self.session.set_source(self.bridge)
        self.bridge.start_media(asyncio.get_running_loop().time(), send_dtmf=self.session.send_dtmf)

    def _on_agent_hangup(self, cause: str) -> None:
        self._spawn(self._graceful_hangup(HangupCause.AGENT_HANGUP))

    def _on_agent_lost(self, reason: str) -> None:
        log.warning("agent lost", extra={"reason": reason})
        if self.agent is not None and self.agent.on_failure == "hangup" and not self.ended:
            self._fail_cause = HangupCause.AGENT_UNAVAILABLE
            self.hangup(HangupCause.AGENT_UNAVAILABLE)

    def _on_media_dtmf(self, digit: str, duration_ms: int) -> None:
        if self.bridge is not None:
            self.bridge.on_dtmf(digit, duration_ms)

    def _on_media_timeout(self) -> None:
        log.warning("no RTP received: ending the call")
        self.hangup(HangupCause.MEDIA_TIMEOUT)

    # --- recording ----------------------------------------------------------------------------

    async def _start_recording(self) -> None:
        if not self.call.record or self.recordings is None or self.session is None:
            return
        try:
            self.recorder = await self.recordings.open_recorder(self.call)
        except OSError:
            log.exception("cannot open the recording file; the call goes on unrecorded")
            return
        self.session.add_observer(self.recorder)

    # --- ending -------------------------------------------------------------------------------

    def hangup(self, cause: HangupCause) -> None:
        """End the call for a local reason, gracefully (agent first) when it is answered."""
        if self.ended or self._hanging_up:
            return
        self._spawn(self._graceful_hangup(cause))

    async def _graceful_hangup(self, cause: HangupCause) -> None:
        if self.ended or self._hanging_up:
            return
        self._hanging_up = True
        if self.answered and self.bridge is not None and cause is not HangupCause.AGENT_UNAVAILABLE:
            # The agent hears `stop` and gets its grace before the caller hears BYE.
            await self.bridge.stop(_STOP_REASON.get(cause, "error"))
        self._sip_hangup(self.call.id, cause)

    def _arm_max_duration(self) -> None:
        # Counted from answer: the talk time is what the limit protects.
        self._max_duration = asyncio.get_running_loop().call_later(
            self.call.max_duration, self.hangup, HangupCause.MAX_DURATION
        )

    def _outcome(self, sip: CallOutcome) -> CallOutcome:
        status = sip.status
        cause = sip.cause
        if self._fail_cause is not None and status is CallStatus.COMPLETED:
            status, cause = CallStatus.FAILED, self._fail_cause
        return CallOutcome(
            status=status, cause=cause, side=sip.side, sip_status=sip.sip_status, sip_reason=sip.sip_reason
        )

    async def _finish(self, outcome: CallOutcome) -> None:
        if self.ended:
            return
        self.ended = True
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
                metrics.agent_connected(connect_ms / 1000)
        recording = await self._stop_media()
        if self.session is not None:
            extra["media_stats"] = _jsonable(self.session.stats())
            metrics.media_stats(extra["media_stats"])
            with contextlib.suppress(Exception):
                await self.session.close()
        if self._on_ended is not None:
            # The call is over for the carrier: its trunk slot and RTP port are free now,
            # while the SIP transactions linger (up to 64*T1) to absorb retransmissions.
            self._on_ended(self)
        if self._last_write is not None:
            await self._last_write  # ringing and answered are stored before the end
        await self.progress.ended(self.call.id, outcome, **self._take_facts(), **extra)
        self.reported = True
        if self.recordings is not None and self.call.record:
            if recording is not None:
                await self.recordings.submit(self.call.id, recording)
            else:
                await self.recordings.mark_not_recorded(self.call.id)

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

    async def _teardown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._connect is not None and not self._connect.done():
            self._connect.cancel()
        if self.bridge is not None and not self.ended:
            with contextlib.suppress(Exception):
                await self.bridge.stop("error")
        await self._stop_media()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        await self._task


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
