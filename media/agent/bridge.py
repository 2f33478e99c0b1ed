"""AgentBridge: one call's session with its AI voice agent.

The gateway is the websocket client. One bridge per call that has an
``agent_id``; it is both the :class:`~media.session.CallerAudioSink` and the
:class:`~media.session.PlayoutSource` of the call's ``MediaSession``.

Life cycle (driven by call control)::

    bridge = AgentBridge(agent_endpoint, call_id=..., account_id=..., from_=..., to=...,
                         metadata=..., on_hangup_request=..., on_agent_lost=...)
    await bridge.connect()              # while the call rings; AgentUnavailable on failure
    bridge.start_media(answered_at)     # at answer: sends start, audio flows both ways
    ...                                 # media tick: on_caller_audio() / next_frame()
    await bridge.stop("remote_hangup")  # sends stop, waits stop_grace_seconds, closes 1000
    record["agent_summary"] = bridge.summary()

Its parts: the websocket (:mod:`media.agent.websocket`, frames parsed by
:mod:`media.agent.frames`), reaching the agent and reconnecting
(:mod:`media.agent.connection`), the wire format (:mod:`media.agent.orbit_voice`
or :mod:`media.agent.twilio`, one codec per connection), the playout queue
(:mod:`media.agent.playout`) and the life cycle (:mod:`media.agent.state`: one
:class:`BridgeState`, changed only along its table). This module ties them
together: the media tick, and what the agent's events do.

Threading: everything runs on the event loop. ``on_caller_audio``,
``next_frame`` and ``on_dtmf`` are synchronous and never wait: frames are
written straight to the transport. When the agent does not read fast enough and
about a second of audio sits unsent in the transport, caller frames are dropped
and counted instead of piling up.

Agent -> caller: audio of any length is queued at the agent's rate in a
:class:`~media.agent.playout.PlayoutQueue` (bounded to ``max_playout_ms``);
each tick takes 20 ms of it. Agents at another rate than 8 kHz are resampled
one 20 ms frame per tick and direction, through the media clock's shared
:class:`~media.resample.FrameResamplers` (``resamplers=``) so that all calls'
frames go through one matrix product: ``prefetch()`` (the clock's prepare
phase) queues the agent frame, ``next_frame()`` plays it; caller frames queued
by ``on_caller_audio`` are sent when the clock runs the batch at the end of
the tick. Without ``resamplers`` each frame is resampled on its own, at once.
Marks, ``clear`` and ``hangup`` follow docs/agent-protocol.md. Callbacks (``on_hangup_request``, ``on_agent_lost``)
are invoked with ``loop.call_soon``, never from inside the media tick.

Failures: :meth:`connect` raises :class:`AgentUnavailable`. A connection that
drops mid-call is reconnected (``reconnect_attempts``, backoff 0/0.2/0.5/1/2 s;
the budget is restored once a connection has stayed up for 30 s), with
``start.reconnect = true``; meanwhile the last 2 s of caller audio and DTMF are
kept and sent right after the new ``start``. When the budget is spent, or a
flood of protocol violations closed the connection, ``on_agent_lost(reason)``
is called and the bridge stays silent.

Time: ``clock`` (monotonic seconds) dates the answer, the first agent audio,
violations and how long a connection lasted; ``sleep`` waits out the reconnect
backoff. Both default to the real ones; tests pass a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from media.agent.connection import AgentConnector, AgentUnavailable
from media.agent.endpoint import AgentEndpoint
from media.agent.errors import FloodGuard, LogLimiter
from media.agent.events import (
    STOP_REASONS,
    AgentAudio,
    AgentCodec,
    Audio,
    Clear,
    Cleared,
    Direction,
    Dtmf,
    GatewayEvent,
    Hangup,
    Mark,
    MarkDone,
    ProtocolViolation,
    SendDtmf,
    Start,
    Stop,
    StopReason,
    Summary,
)
from media.agent.frames import Message
from media.agent.orbit_voice import OrbitVoiceCodec
from media.agent.playout import PlayoutQueue
from media.agent.state import BridgeState, check_transition
from media.agent.summary import AgentSessionStats
from media.agent.twilio import TwilioCodec
from media.agent.websocket import AgentSocket, SocketOptions
from media.resample import FrameResampler, FrameResamplers
from media.timeutil import utcnow

__all__ = ["AgentBridge", "AgentUnavailable", "BridgeState"]

log = logging.getLogger("media.agent.bridge")

_PCM_RATE: Final = 8000
_FRAME_MS: Final = 20
_MAX_PENDING_EVENTS: Final = 256

# The states the media tick asks about, as module constants: it asks 50 times a second per call.
_STREAMING: Final = BridgeState.STREAMING
_BUFFERING: Final = (BridgeState.NEW, BridgeState.CONNECTING, BridgeState.RECONNECTING)
_FINISHING: Final = (BridgeState.STOPPING, BridgeState.STOPPED)
_ATTACHED: Final = (BridgeState.CONNECTED, BridgeState.STREAMING, BridgeState.RECONNECTING, BridgeState.ENDED)


def _abort_result(task: asyncio.Task[AgentSocket]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().abort()


class AgentBridge:
    """Connects one call to its agent. Implements CallerAudioSink and PlayoutSource."""

    def __init__(
        self,
        agent: AgentEndpoint,
        *,
        call_id: str,
        account_id: str,
        from_: str,
        to: str,
        metadata: dict[str, Any] | None = None,
        direction: Direction = "outbound",
        on_hangup_request: Callable[[str], None],
        on_agent_lost: Callable[[str], None],
        send_dtmf: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_playout_ms: int = 60_000,
        reconnect_buffer_ms: int = 2_000,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        close_timeout: float = 2.0,
        max_message_bytes: int = 1 << 20,
        ssl_context: ssl.SSLContext | None = None,
        resamplers: FrameResamplers | None = None,
    ) -> None:
        self.agent = agent
        self.call_id = call_id
        self.account_id = account_id
        self.from_ = from_
        self.to = to
        self.metadata = dict(metadata or {})
        self.direction: Direction = direction
        self._on_hangup_request = on_hangup_request
        self._on_agent_lost = on_agent_lost
        self._send_dtmf = send_dtmf
        self._clock = clock
        self._close_timeout = close_timeout

        self._codec: AgentCodec = self._new_codec()
        rate = self._codec.sample_rate
        self._rate = rate
        options = SocketOptions(
            max_size=max_message_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )
        self._connector = AgentConnector(
            agent,
            call_id=call_id,
            subprotocol=self._codec.subprotocol,
            options=options,
            ssl_context=ssl_context,
            clock=clock,
            sleep=sleep,
        )
        # Resampling (agents not at 8 kHz): a slot in the clock's shared per-tick batch.
        self._batched = resamplers is not None
        pool = resamplers or FrameResamplers()
        self._up: FrameResampler | None = None
        self._down: FrameResampler | None = None
        self._up_slot = self._down_slot = -1
        if rate != _PCM_RATE:
            self._up, self._down = pool.get(_PCM_RATE, rate), pool.get(rate, _PCM_RATE)
            self._up_slot, self._down_slot = self._up.open(), self._down.open()
        self._ready: bytes | None = None  # this tick's agent frame, resampled to 8 kHz
        self._down_used = False  # the down-resampler holds audio since its last reset
        self._fetching = False
        # About one second of encoded audio may wait in the transport before frames are dropped.
        wire_per_s = rate * 2 if agent.protocol == "orbit-voice" else 20_000
        self._send_limit = max(16 * 1024, wire_per_s)

        # The queue holds the agent's own rate: 20 ms frames of PCM16.
        self._queue = PlayoutQueue(frame_bytes=rate // 50 * 2, bytes_per_ms=rate // 500, max_ms=max_playout_ms)
        self._pending: deque[bytes | Dtmf] = deque(maxlen=max(1, reconnect_buffer_ms // _FRAME_MS))
        self._pending_out: list[GatewayEvent] = []
        self._flood = FloodGuard()
        self._log_limit = LogLimiter()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = BridgeState.NEW
        self._sock: AgentSocket | None = None
        self._connect_task: asyncio.Task[AgentSocket] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._answered_at: float | None = None  # clock() at answer; media flows from then on
        self._streamed = False  # a `start` went out before: the next one says reconnect
        # The agent's hang-up outlives its connection: asked for (maybe after playout), then done once.
        self._hangup_requested = False
        self._hangup_fired = False
        self._stopped = asyncio.Event()

        self.stats = AgentSessionStats(agent.id, agent.protocol, rate)

    # ------------------------------------------------------------------ public state

    @property
    def state(self) -> BridgeState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._sock is not None and self._sock.is_open

    @property
    def streaming(self) -> bool:
        """True while start has been sent on a live connection."""
        return self._state is _STREAMING and self.connected

    @property
    def hangup_requested(self) -> bool:
        """The agent asked to hang up (perhaps once its queued audio has played)."""
        return self._hangup_requested

    @property
    def playout_queued_ms(self) -> int:
        return self._queue.queued_ms

    def summary(self) -> dict[str, Any]:
        """The ``agent_summary`` for the call record (see media/agent/summary.py)."""
        q = self._queue
        st = self.stats
        # Counted in bytes of 8 kHz PCM16, whatever the agent's rate.
        st.agent_audio_played_bytes = q.played_bytes * _PCM_RATE // self._rate
        st.agent_audio_cleared_bytes = q.cleared_bytes * _PCM_RATE // self._rate
        st.agent_audio_overflow_bytes = q.overflow_bytes * _PCM_RATE // self._rate
        st.agent_audio_trimmed_bytes = q.trimmed_bytes * _PCM_RATE // self._rate
        return st.as_dict()

    def _to(self, new: BridgeState) -> None:
        """The one place the state changes: InvalidTransition for a pair not in the table."""
        check_transition(self._state, new)
        log.debug(
            "agent bridge state",
            extra={"call_id": self.call_id, "agent_id": self.agent.id, "from": self._state.value, "to": new.value},
        )
        self._state = new

    # ------------------------------------------------------------------ connect

    async def connect(self) -> None:
        """Open the agent connection (call it while the call rings).

        Raises :class:`AgentUnavailable` on timeout, refusal, an HTTP error or a
        failed handshake. Calling it again while a connect is under way waits
        for the same attempt.
        """
        self._loop = asyncio.get_running_loop()
        if self._state in _ATTACHED:
            return
        if self._state in _FINISHING:
            raise AgentUnavailable("stopped", "the bridge was stopped")
        if self._state is BridgeState.LOST:
            raise AgentUnavailable("lost", "the agent was lost earlier in this call")
        if self._connect_task is None:
            self._to(BridgeState.CONNECTING)
            self._connect_task = self._loop.create_task(self._connector.open())
        task = self._connect_task
        started = self._clock()
        try:
            sock = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise AgentUnavailable("stopped", "the bridge was stopped") from None
            # The caller gave up waiting: do not leave a connection behind.
            task.cancel()
            task.add_done_callback(_abort_result)
            raise
        except AgentUnavailable as exc:
            if self._state is BridgeState.CONNECTING:
                self._to(BridgeState.UNAVAILABLE)
                self.stats.end_reason = self.stats.end_reason or "agent_unavailable"
                self._pending.clear()
                log.warning("agent %s unavailable for call %s: %s", self.agent.id, self.call_id, exc)
            raise
        if self._sock is sock:
            return
        if self._state in _FINISHING:
            sock.abort()
            raise AgentUnavailable("stopped", "the bridge was stopped")
        self.stats.connect_ms = round((self._clock() - started) * 1000)
        self._install(sock)

    def _new_codec(self) -> AgentCodec:
        if self.agent.protocol == "twilio":
            return TwilioCodec(self.account_id, self.call_id)
        return OrbitVoiceCodec(self.agent.sample_rate)

    def _install(self, sock: AgentSocket) -> None:
        self._sock = sock
        self._to(BridgeState.CONNECTED)
        if self.stats.connected_at is None:
            self.stats.connected_at = utcnow()
        log.info(
            "agent %s connected for call %s (subprotocol %s)", self.agent.id, self.call_id, sock.subprotocol
        )
        if self._answered_at is not None:
            self._begin_stream(sock)
        sock.attach(self._on_message, self._on_closed)

    # ------------------------------------------------------------------ media start

    def start_media(self, answered_at: float, *, send_dtmf: Callable[[str], None] | None = None) -> None:
        """The call is answered: send ``start`` and stream audio both ways.

        ``answered_at`` is a ``clock()`` reading (``time.monotonic()`` by
        default) taken at answer; the first agent frame played is measured from
        it. If the connection is still being set up (or re-established), caller
        audio is buffered and ``start`` goes out as soon as it opens.
        """
        if send_dtmf is not None:
            self._send_dtmf = send_dtmf
        if self._answered_at is not None or self._state in _FINISHING:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._answered_at = answered_at
        sock = self._sock
        if sock is not None and sock.is_open:
            self._begin_stream(sock)

    def _begin_stream(self, sock: AgentSocket) -> None:
        if self.agent.protocol == "twilio":
            self._codec = self._new_codec()  # a new stream: new streamSid, numbering from 1
        codec = self._codec
        for opening in codec.opening_frames():
            sock.send(opening)
        start = Start(
            call_id=self.call_id,
            from_=self.from_,
            to=self.to,
            direction=self.direction,
            metadata=self.metadata,
            account_id=self.account_id,
            sample_rate=codec.sample_rate,
            reconnect=self._streamed,
        )
        start_frame = codec.encode(start)
        assert start_frame is not None
        sock.send(start_frame)
        self._to(BridgeState.STREAMING)
        self._streamed = True
        if self._up is not None:
            self._up.reset(self._up_slot)
        pending_out, self._pending_out = self._pending_out, []
        for event in pending_out:
            self._send_event(event)
        pending, self._pending = self._pending, deque(maxlen=self._pending.maxlen)
        for item in pending:
            if isinstance(item, bytes):
                self._send_caller(item)
            else:
                self._send_event(item)

    # ------------------------------------------------------------------ media tick (sync, cheap)

    def on_caller_audio(self, pcm: bytes) -> None:
        """CallerAudioSink: 320 bytes of PCM16 8 kHz, once per tick."""
        state = self._state
        if state is _STREAMING:
            self._send_caller(pcm)
        elif self._answered_at is not None and state in _BUFFERING:
            pending = self._pending
            if len(pending) == pending.maxlen:
                self.stats.caller_frames_dropped += 1
            pending.append(pcm)

    def _send_caller(self, pcm: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        if sock.write_buffer_size() > self._send_limit:
            self.stats.caller_frames_dropped += 1
            return
        up = self._up
        if up is None:
            self._send_audio(pcm)
        elif self._batched:
            up.submit(self._up_slot, pcm, self._send_audio)  # sent when the clock runs the batch
        else:
            self._send_audio(up.process(self._up_slot, pcm))

    def _send_audio(self, data: bytes) -> None:
        sock = self._sock
        if sock is None or self._state is not _STREAMING:
            return
        frame = self._codec.encode(Audio(data))
        if frame is not None and sock.send(frame):
            self.stats.caller_frames_sent += 1

    def prefetch(self) -> None:
        """Clock prepare phase: take this tick's agent frame and queue its resampling."""
        down = self._down
        if down is None or self._ready is not None or self._fetching:
            return
        if self._answered_at is None or self._state in _FINISHING:
            return
        frame = self._take_frame()
        if frame is not None:
            self._fetching = True
            down.submit(self._down_slot, frame, self._fetched)

    def _fetched(self, pcm: bytes) -> None:
        self._fetching = False
        self._ready = pcm

    def next_frame(self) -> bytes | None:
        """PlayoutSource: 320 bytes of PCM16 8 kHz to play this tick, or None for silence."""
        if self._answered_at is None or self._state in _FINISHING:
            return None
        down = self._down
        if down is None:
            return self._take_frame()
        if self._fetching:
            down.run()  # prefetched, but nobody ran the batch
        frame, self._ready = self._ready, None
        if frame is None:
            taken = self._take_frame()
            frame = None if taken is None else down.process(self._down_slot, taken)
        return frame

    def _take_frame(self) -> bytes | None:
        """One 20 ms frame at the agent's rate off the queue, with the marks and hang-up it reaches."""
        q = self._queue
        frame = q.next_frame()
        if frame is not None:
            self._down_used = True
        elif self._down_used and self._down is not None and q.available == 0:
            self._down.reset(self._down_slot)  # the next utterance starts from silence
            self._down_used = False
        if q.reached:
            for name in q.pop_reached():
                self.stats.marks_played += 1
                self._send_event(MarkDone(name, "played"))
        if q.hangup_due and not self._hangup_fired:
            self._fire_hangup()
        if (
            frame is not None
            and self.stats.answer_to_first_audio_ms is None
            and self._answered_at is not None
        ):
            self.stats.answer_to_first_audio_ms = max(0, round((self._clock() - self._answered_at) * 1000))
        return frame

    def _release_resamplers(self) -> None:
        if self._up is not None:
            self._up.close(self._up_slot)
            self._up = None
        if self._down is not None:
            self._down.close(self._down_slot)
            self._down = None
        self._ready = None
        self._fetching = False

    def on_dtmf(self, digit: str, duration_ms: int | None = None) -> None:
        """A digit the caller pressed (MediaSession's on_dtmf, or SIP INFO)."""
        self.stats.dtmf_received += digit
        event = Dtmf(digit, max(0, duration_ms or 0))
        state = self._state
        if self._answered_at is None or state in _FINISHING:
            return
        if state is _STREAMING:
            self._send_event(event)
        elif state in _BUFFERING:
            self._pending.append(event)

    def _send_event(self, event: GatewayEvent) -> None:
        sock = self._sock
        if sock is None or self._state is not _STREAMING:
            if len(self._pending_out) < _MAX_PENDING_EVENTS:
                self._pending_out.append(event)
            return
        self._encode_and_send(sock, event)

    def _encode_and_send(self, sock: AgentSocket, event: GatewayEvent) -> None:
        try:
            frame = self._codec.encode(event)
        except ValueError:
            log.exception("cannot encode %s for agent %s", type(event).__name__, self.agent.id)
            return
        if frame is not None:
            sock.send(frame)

    # ------------------------------------------------------------------ agent -> gateway

    def _on_message(self, sock: AgentSocket, frame: Message) -> None:
        if sock is not self._sock:
            return
        if frame is None:
            self._violation(ProtocolViolation("malformed_json", "text frame is not valid UTF-8"))
            return
        event = self._codec.decode(frame)
        if isinstance(event, ProtocolViolation):
            self._violation(event)
            return
        if self._state in _FINISHING:
            if isinstance(event, Summary):
                self.stats.agent_data = event.data
            return
        if isinstance(event, AgentAudio):
            self._on_agent_audio(event.pcm)
        elif isinstance(event, Mark):
            for name in self._queue.push_mark(event.name):
                self.stats.marks_played += 1
                self._send_event(MarkDone(name, "played"))
        elif isinstance(event, Clear):
            self._clear()
        elif isinstance(event, Hangup):
            self._agent_hangup(event.after_playout)
        elif isinstance(event, SendDtmf):
            self._agent_send_dtmf(event.digits)
        elif isinstance(event, Summary):
            self.stats.agent_data = event.data

    def _on_agent_audio(self, pcm: bytes) -> None:
        self._queue.push_audio(pcm)

    def _clear(self) -> None:
        q = self._queue
        result = q.clear()
        self._ready = None  # a frame taken for this tick but not yet played is dropped too
        self.stats.interruptions += 1
        for name in result.marks:
            self.stats.marks_cleared += 1
            self._send_event(MarkDone(name, "cleared"))
        self._send_event(Cleared(result.played_ms, result.dropped_ms))
        if q.hangup_due and not self._hangup_fired:
            self._fire_hangup()

    def _agent_hangup(self, after_playout: bool) -> None:
        self._hangup_requested = True
        if not after_playout or self._answered_at is None or self._queue.request_hangup():
            self._fire_hangup()

    def _agent_send_dtmf(self, digits: str) -> None:
        sender = self._send_dtmf
        if sender is None or self._answered_at is None:
            log.warning(
                "agent %s sent DTMF %r but the call has no media to send it on", self.agent.id, digits
            )
            return
        try:
            sender(digits)
        except Exception:
            log.exception("sending agent DTMF %r failed for call %s", digits, self.call_id)
            return
        self.stats.dtmf_sent += digits

    def _violation(self, violation: ProtocolViolation) -> None:
        self.stats.count_violation(violation.kind)
        now = self._clock()
        allowed, suppressed = self._log_limit.allow(now)
        if allowed:
            log.warning(
                "agent %s protocol violation on call %s: %s (%s)%s",
                self.agent.id,
                self.call_id,
                violation.kind,
                violation.detail,
                f"; {suppressed} more not logged" if suppressed else "",
            )
        code = self._flood.record(violation, int(now * 1000))
        if code is not None and self._state not in _FINISHING and self._sock is not None:
            sock = self._sock
            self._detach()
            sock.close(code, "too many protocol violations")
            log.warning(
                "agent %s flooded call %s with violations; closed with %d", self.agent.id, self.call_id, code
            )
            self._lose("protocol_violation")

    # ------------------------------------------------------------------ callbacks

    def _fire_hangup(self) -> None:
        if self._hangup_fired:
            return
        self._hangup_fired = True
        self._hangup_requested = True
        if self.stats.end_reason is None:
            self.stats.end_reason = "agent_hangup"
        self._call_soon(self._on_hangup_request, "agent_hangup")

    def _call_soon(self, callback: Callable[[str], None], arg: str) -> None:
        def run() -> None:
            try:
                callback(arg)
            except Exception:
                log.exception("agent bridge callback failed for call %s", self.call_id)

        loop = self._loop
        if loop is None:
            run()
        else:
            loop.call_soon(run)

    # ------------------------------------------------------------------ drops and reconnection

    def _detach(self) -> None:
        self._sock = None
        self._pending_out = []

    def _on_closed(self, sock: AgentSocket) -> None:
        if sock is not self._sock:
            return
        self._detach()
        if sock.oversized:
            self.stats.count_violation("oversized_frame")
        if self._state in _FINISHING:
            self.stats.disconnected_at = utcnow()
            return
        agent_closed_normally = not sock.closed_by_us and sock.close_code == 1000
        if self._hangup_requested or (self.agent.protocol == "twilio" and agent_closed_normally):
            # The agent is done: let its last words play, then hang up.
            self._to(BridgeState.ENDED)
            self.stats.disconnected_at = utcnow()
            if not self._hangup_requested:
                self._agent_hangup(after_playout=True)
            return
        log.warning(
            "agent %s connection for call %s dropped (close %s %r, %s)",
            self.agent.id,
            self.call_id,
            sock.close_code,
            sock.close_reason,
            sock.error,
        )
        self._connector.dropped(sock)
        self._queue.reset()
        self._ready = None
        if self._down is not None:
            self._down.reset(self._down_slot)
        self._to(BridgeState.RECONNECTING)
        loop = self._loop or asyncio.get_running_loop()
        self._reconnect_task = loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        sock = await self._connector.reconnect(on_attempt=self._reconnect_attempt)
        if sock is None:
            self._lose("reconnect_failed")
        elif self._state in _FINISHING:  # stop() cancels this task, but not a socket opened meanwhile
            sock.abort()
        else:
            self.stats.reconnects += 1
            self._install(sock)

    def _reconnect_attempt(self) -> None:
        self.stats.reconnect_attempts += 1

    def _lose(self, reason: str) -> None:
        if self._state is BridgeState.LOST:
            return
        self._to(BridgeState.LOST)
        self.stats.end_reason = self.stats.end_reason or reason
        self.stats.disconnected_at = utcnow()
        self._queue.reset()
        self._pending.clear()
        self._pending_out = []
        log.warning("agent %s lost for call %s: %s", self.agent.id, self.call_id, reason)
        self._call_soon(self._on_agent_lost, reason)

    # ------------------------------------------------------------------ stop

    async def stop(self, reason: str = "api_hangup") -> None:
        """End the agent session: send ``stop``, wait up to stop_grace_seconds for the
        agent to close (a final ``summary`` may still arrive), then close with 1000.

        ``reason`` is api_hangup, remote_hangup, max_duration or error (anything
        else is sent as error). Safe to call more than once and in any state; the
        bridge ends STOPPED (``summary()["end_reason"]`` keeps why it went quiet).
        """
        if self._state in _FINISHING:
            await self._stopped.wait()
            return
        streaming = self._state is _STREAMING
        self._to(BridgeState.STOPPING)
        stop_reason: StopReason = reason if reason in STOP_REASONS else "error"  # type: ignore[assignment]
        if self.stats.end_reason is None:
            self.stats.end_reason = stop_reason
        try:
            for task in (self._connect_task, self._reconnect_task):
                if task is not None and not task.done():
                    task.cancel()
            sock = self._sock
            if sock is not None and sock.is_open:
                if streaming:
                    self._encode_and_send(sock, Stop(stop_reason))
                    grace = self.agent.stop_grace_seconds
                    if grace > 0:
                        await asyncio.wait([sock.closed], timeout=grace)
                if not sock.closed.done():
                    sock.close(1000)
                    await asyncio.wait([sock.closed], timeout=self._close_timeout)
                if not sock.closed.done():
                    sock.abort()
        finally:
            self._sock = None
            self._queue.reset()
            self._release_resamplers()
            self._pending.clear()
            if self.stats.connected_at is not None and self.stats.disconnected_at is None:
                self.stats.disconnected_at = utcnow()
            self._to(BridgeState.STOPPED)
            self._stopped.set()
