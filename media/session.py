"""One call's media: RTP endpoint + jitter buffer + G.711 + DTMF + RTCP, driven by the clock.

``MediaSession(call_id, rtp_port, config, *, on_dtmf, on_media_timeout)`` is a
:class:`~media.clock.ClockParticipant`. Its time comes from ``clock`` (monotonic
seconds, the same as the media clock's ``now``; packet arrivals, timeouts, RTCP)
and ``wall_clock`` (Unix seconds, for RTCP's NTP timestamps and round-trip
times); both default to the real ones, and tests pass fakes. Life cycle: ``await open()`` (binds RTP on
``rtp_port`` and RTCP on ``rtp_port + 1``; :class:`MediaPortBusy` if taken), then
``set_remote(negotiated_media)`` whenever SDP is negotiated (again on re-INVITE),
``clock.add(session)``, ..., ``clock.remove(session)``, ``await close()``.

Each tick (20 ms), in this order:

0. ``prepare(now)``, the clock's phase before every tick: a source with a
   ``prefetch()`` method takes its frame now, so the clock can resample all
   calls' frames in one batch before ``tick`` plays them.
1. Inbound: ``JitterBuffer.get`` -> G.711 decode -> 320 bytes of PCM16 8 kHz to
   every :class:`CallerAudioSink` (the last frame repeated and faded when a packet
   is missing, zeros when there is nothing).
2. Outbound: ``PlayoutSource.next_frame()`` (or silence) -> encode -> one RTP
   packet with continuous seq and timestamp (+160). Ticks the clock skipped advance
   the timestamp and set the marker on the next packet. Queued DTMF replaces the
   audio packets (RFC 4733 on the negotiated telephone-event PT, or in-band tones
   when none was negotiated); the source is paused, not drained, meanwhile.
   Nothing is sent while the peer does not want our media (hold, ``sendonly``/
   ``inactive``, rejected stream, no remote yet); during hold the source is still
   drained so its audio does not pile up.
3. Every :class:`FrameObserver` gets ``(caller, played, now)``; ``played`` is the
   PCM that was encoded and sent (silence when nothing was).
4. Timers: DTMF end-packet timeout, media timeout (``media_timeout`` without RTP,
   ``hold_timeout`` while on hold; ``on_media_timeout`` fires once), RTCP SR/RR
   every ``rtcp_interval`` (randomised 0.5-1.5x, RFC 3550 6.2).

Received RFC 4733 packets go to a :class:`~media.dtmf.DtmfReceiver`, never to the
jitter buffer; each digit is reported once through ``on_dtmf(digit, duration_ms)``.
Callbacks (sinks, source, observers, on_dtmf, on_media_timeout) that raise are
logged and counted in ``callback_errors``; they do not stop the call's media.

Known limits: G.711 (PCMU/PCMA, 8 kHz) only; received packets must carry a
multiple of 20 ms (other sizes are cut or padded to 20 ms per frame).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from media import g711
from media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender, event_for_digit
from media.endpoint import MediaPortBusy, RtpEndpoint
from media.jitterbuffer import FrameKind, JitterBuffer, JitterBufferStats
from media.negotiated import NegotiatedMedia
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    round_trip_time,
    serialize_rtcp,
)
from media.rtp import RtpSender
from media.stats import MediaStats

__all__ = [
    "FRAME_BYTES",
    "SAMPLES_PER_FRAME",
    "CallerAudioSink",
    "FrameObserver",
    "MediaConfig",
    "MediaPortBusy",
    "MediaSession",
    "PlayoutSource",
]

log = logging.getLogger(__name__)

CLOCK_RATE = 8000
SAMPLES_PER_FRAME = 160  # 20 ms at 8 kHz
FRAME_BYTES = 2 * SAMPLES_PER_FRAME  # PCM16
_SILENCE = bytes(FRAME_BYTES)
_CN_PAYLOAD_TYPE = 13  # RFC 3389 comfort noise: played as silence
_CONCEAL_GAIN = (1.0, 0.6, 0.3)  # repeat the last frame, then fade it out
_QUIET_LEVEL = 256  # about -42 dBFS: line noise, not speech

_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "PCMU": (g711.ulaw_decode, g711.ulaw_encode),
    "PCMA": (g711.alaw_decode, g711.alaw_encode),
}

_DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
_DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_DTMF_KEYPAD = ("123A", "456B", "789C", "*0#D")


@dataclass(frozen=True, slots=True)
class MediaConfig:
    local_address: str
    media_timeout: float = 30.0
    hold_timeout: float = 600.0
    rtcp_interval: float = 5.0
    jitter_min_ms: int = 20
    jitter_max_ms: int = 60
    # How long a NAT-learned source may still be replaced by the signalled address.
    learn_window: float = 2.0


class CallerAudioSink(Protocol):
    def on_caller_audio(self, pcm: bytes) -> None: ...


class PlayoutSource(Protocol):
    def next_frame(self) -> bytes | None: ...


class FrameObserver(Protocol):
    def on_frames(self, caller: bytes, played: bytes, now: float) -> None: ...


def _fit(pcm: bytes) -> bytes:
    """Cut or zero-pad to exactly one frame."""
    n = len(pcm)
    return pcm[:FRAME_BYTES] if n > FRAME_BYTES else pcm + bytes(FRAME_BYTES - n)


def _scale(pcm: bytes, gain: float) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * gain
    return samples.astype("<i2").tobytes()


def _inband_dtmf_frames(digits: str) -> list[tuple[bytes, bool]]:
    """100 ms dual tone + 100 ms silence per digit, as (frame, starts_digit) pairs."""
    t = np.arange(5 * SAMPLES_PER_FRAME, dtype=np.float64) / CLOCK_RATE
    frames: list[tuple[bytes, bool]] = []
    for ch in digits:
        row = next(i for i, keys in enumerate(_DTMF_KEYPAD) if ch.upper() in keys)
        col = _DTMF_KEYPAD[row].index(ch.upper())
        tone = (np.sin(2 * np.pi * _DTMF_ROWS[row] * t) + np.sin(2 * np.pi * _DTMF_COLS[col] * t)) * 7000
        pcm = tone.astype("<i2").tobytes()
        for i in range(5):
            frames.append((pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], i == 0))
        frames.extend((_SILENCE, False) for _ in range(5))
    return frames


class MediaSession:
    """See the module docstring."""

    def __init__(
        self,
        call_id: str,
        rtp_port: int,
        config: MediaConfig,
        *,
        on_dtmf: Callable[[str, int], None],
        on_media_timeout: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.call_id = call_id
        self.rtp_port = rtp_port
        self.config = config
        self._on_dtmf = on_dtmf
        self._on_media_timeout = on_media_timeout
        self._clock = clock
        self._wall_clock = wall_clock
        self._endpoint = RtpEndpoint(
            config.local_address,
            rtp_port,
            on_rtp=self._on_rtp,
            on_rtcp=self._on_rtcp,
            learn_window=config.learn_window,
            clock=clock,
        )
        self._jb = JitterBuffer(
            clock_rate=CLOCK_RATE,
            frame_ms=20,
            min_delay_ms=config.jitter_min_ms,
            max_delay_ms=config.jitter_max_ms,
            is_quiet=self._quiet_payload,
        )
        self._reception = ReceptionStats(CLOCK_RATE)
        self._dtmf_rx = DtmfReceiver(CLOCK_RATE)
        self._sender = RtpSender(0)
        self._stats = MediaStats()
        self._cname = secrets.token_hex(8) + "@orbit"
        self._open = False
        self._closed = False

        self._media: NegotiatedMedia | None = None
        self._codec = ""
        self._decode, self._encode = _CODECS["PCMU"]
        self._silence_payload = self._encode(_SILENCE)
        self._audio_pts: frozenset[int] = frozenset()
        self._te_pts: frozenset[int] = frozenset()
        self._te_send_pt: int | None = None
        self._sending = False
        self._was_sending = False
        self._on_hold = False
        self._timeout = config.media_timeout
        self._last_rx = clock()
        self._timed_out = False
        self._rx_ssrc: int | None = None

        self._source: PlayoutSource | None = None
        self._prefetch: Callable[[], None] | None = None
        self._sinks: list[CallerAudioSink] = []
        self._observers: list[FrameObserver] = []
        self._last_tick: int | None = None

        self._dtmf_queue: deque[str] = deque()
        self._dtmf: DtmfSender | None = None
        self._dtmf_base_ts = 0
        self._inband: deque[tuple[bytes, bool]] = deque()

        self._next_rtcp = 0.0
        self._sent_since_report = False
        self._rtcp_bye_in = 0
        self._remote_fraction_lost: float | None = None
        self._remote_jitter_ms: float | None = None
        self._remote_cumulative_lost: int | None = None
        self._callback_errors = 0

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        if self._closed:
            raise RuntimeError("media session already closed")
        if self._open:
            return
        await self._endpoint.open()
        self._open = True
        self._next_rtcp = self._clock() + self._rtcp_delay() / 2

    async def close(self) -> None:
        if not self._open:
            self._closed = True
            return
        self._open = False
        self._closed = True
        if self._media is not None:
            try:
                self._send_report(self._clock(), bye=True)
            except Exception:  # never keep the sockets open because BYE failed
                log.exception("RTCP BYE failed for call %s", self.call_id)
        self._endpoint.close()

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def ssrc(self) -> int:
        return self._sender.ssrc

    @property
    def endpoint(self) -> RtpEndpoint:
        return self._endpoint

    # ------------------------------------------------------------------ configuration

    def set_remote(self, media: NegotiatedMedia) -> None:
        codec = media.codec.upper()
        if codec not in _CODECS or media.clock_rate != CLOCK_RATE:
            if not media.rejected:
                raise ValueError(f"unsupported codec {media.codec}/{media.clock_rate}")
            codec = self._codec or "PCMU"
        if codec != self._codec:
            if self._codec:
                self._jb.reset()  # held payloads belong to the old codec
            self._codec = codec
            self._decode, self._encode = _CODECS[codec]
            self._silence_payload = self._encode(_SILENCE)
        if media.payload_type != self._sender.payload_type:
            old = self._sender
            new = RtpSender(
                media.payload_type,
                ssrc=old.ssrc,
                sequence_number=old.sequence_number,
                timestamp=old.timestamp,
            )
            new.packets_sent = old.packets_sent
            new.octets_sent = old.octets_sent
            self._sender = new
        # We receive on the numbers we declared; the peer's own numbers are
        # accepted too because some peers get RFC 3264 wrong.
        audio = frozenset({media.local_payload_type, media.payload_type})
        te = frozenset(
            pt for pt in (media.local_telephone_event_pt, media.telephone_event_pt) if pt is not None
        )
        self._audio_pts = audio
        self._te_pts = te - audio
        self._te_send_pt = media.telephone_event_pt
        self._endpoint.set_remote(
            media.remote_address,
            media.remote_port,
            media.remote_rtcp_port,
            audio | te | {_CN_PAYLOAD_TYPE},
            rtcp_mux=media.rtcp_mux,
        )
        self._sending = media.can_send and not media.remote_hold and media.remote_port > 0
        self._on_hold = (
            media.rejected or media.remote_hold or not media.direction.sends or not media.direction.receives
        )
        self._timeout = self.config.hold_timeout if self._on_hold else self.config.media_timeout
        self._last_rx = self._clock()
        self._media = media

    def set_source(self, source: PlayoutSource | None) -> None:
        self._source = source
        # A source may take its frame early, in the clock's prepare phase, to batch its work.
        self._prefetch = getattr(source, "prefetch", None)

    def add_sink(self, sink: CallerAudioSink) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: CallerAudioSink) -> None:
        self._sinks = [s for s in self._sinks if s is not sink]

    def add_observer(self, observer: FrameObserver) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer: FrameObserver) -> None:
        self._observers = [o for o in self._observers if o is not observer]

    def send_dtmf(self, digits: str) -> None:
        """Queue digits (``0-9 * # A-D``); ValueError for anything else."""
        for ch in digits:
            event_for_digit(ch)
        if digits:
            self._dtmf_queue.append(digits)

    @property
    def dtmf_pending(self) -> bool:
        return bool(self._dtmf_queue or self._dtmf is not None or self._inband)

    def _quiet_payload(self, payload: bytes) -> bool:
        """The jitter buffer may skip this frame to shed excess delay: at most line noise."""
        samples = np.frombuffer(self._decode(payload), dtype="<i2")
        return bool(samples.size == 0 or (samples.max() <= _QUIET_LEVEL and samples.min() >= -_QUIET_LEVEL))

    # ------------------------------------------------------------------ receive path

    def _on_rtp(
        self,
        data: bytes,
        pt: int,
        seq: int,
        ts: int,
        ssrc: int,
        marker: bool,
        offset: int,
        end: int,
        now: float,
    ) -> None:
        self._last_rx = now
        st = self._stats
        st.packets_in += 1
        st.bytes_in += len(data)
        if ssrc != self._rx_ssrc:
            self._rx_ssrc = ssrc
            self._dtmf_rx.reset()
        self._reception.update(seq, ts, now, ssrc)
        if pt in self._audio_pts:
            self._jb.put(seq, ts, ssrc, data[offset:end], marker, now)
        elif pt in self._te_pts:
            for digit in self._dtmf_rx.feed(ts, marker, data[offset:end], seq, now):
                self._report_dtmf(digit)

    def _report_dtmf(self, digit: DtmfDigit) -> None:
        if digit.digit is None:
            return
        self._stats.dtmf_in += 1
        try:
            self._on_dtmf(digit.digit, round(digit.duration_ms))
        except Exception:
            self._callback_failed("on_dtmf")

    def _on_rtcp(self, packets: list[RtcpPacket], now: float) -> None:
        self._stats.rtcp_in += 1
        arrival = self._wall_clock()
        our_ssrc = self._sender.ssrc
        for packet in packets:
            blocks: list[ReportBlock]
            if isinstance(packet, SenderReport):
                if self._reception.ssrc in (None, packet.ssrc):
                    self._reception.on_sender_report(packet.ntp_timestamp, now)
                blocks = packet.reports
            elif isinstance(packet, ReceiverReport):
                blocks = packet.reports
            elif isinstance(packet, Bye):
                self._rtcp_bye_in += 1
                continue
            else:
                continue
            for block in blocks:
                if block.ssrc != our_ssrc:
                    continue
                rtt = round_trip_time(block, arrival)
                if rtt is not None:
                    self._stats.rtt_ms = rtt * 1000.0
                self._remote_fraction_lost = block.fraction_lost / 256.0
                self._remote_jitter_ms = block.jitter * 1000.0 / CLOCK_RATE
                self._remote_cumulative_lost = block.cumulative_lost

    # ------------------------------------------------------------------ tick

    def prepare(self, now: float) -> None:
        """Clock phase before ``tick``: let the source fetch (and queue the resampling of) its frame."""
        prefetch = self._prefetch
        if prefetch is not None and self._open:
            try:
                prefetch()
            except Exception:
                self._callback_failed("source")

    def tick(self, now: float, tick_index: int) -> None:
        if not self._open:
            return
        last = self._last_tick
        skipped = tick_index - last - 1 if last is not None and tick_index > last else 0
        self._last_tick = tick_index

        frame = self._jb.get(now)
        kind = frame.kind
        if kind is FrameKind.AUDIO and frame.payload is not None:
            caller = self._decode(frame.payload)
            if len(caller) != FRAME_BYTES:
                caller = _fit(caller)
        elif kind is FrameKind.CONCEALED and frame.payload is not None:
            caller = _fit(self._decode(frame.payload))
            gain = _CONCEAL_GAIN[min(frame.consecutive, len(_CONCEAL_GAIN)) - 1]
            if gain != 1.0:
                caller = _scale(caller, gain)
        else:
            caller = _SILENCE
        for sink in self._sinks:
            try:
                sink.on_caller_audio(caller)
            except Exception:
                self._callback_failed("sink")

        played = self._send_audio(skipped)

        for observer in self._observers:
            try:
                observer.on_frames(caller, played, now)
            except Exception:
                self._callback_failed("observer")

        if self._dtmf_rx.in_progress:
            for digit in self._dtmf_rx.on_timer(now):
                self._report_dtmf(digit)
        if not self._timed_out and self._media is not None and now - self._last_rx >= self._timeout:
            self._timed_out = True
            try:
                self._on_media_timeout()
            except Exception:
                self._callback_failed("on_media_timeout")
        if now >= self._next_rtcp:
            self._next_rtcp = now + self._rtcp_delay()
            if self._media is not None:
                self._send_report(now)

    def _send_audio(self, skipped: int) -> bytes:
        sender = self._sender
        if skipped:
            sender.advance(SAMPLES_PER_FRAME * skipped)
            sender.mark_gap()
            dtmf = self._dtmf
            if dtmf is not None:
                # Keep the event schedule on wall time: the skipped packets are lost.
                for _ in range(skipped):
                    dtmf.next_payload()
        if not self._sending:
            sender.advance(SAMPLES_PER_FRAME)
            self._was_sending = False
            if self._media is not None and self._source is not None:
                # Hold: the far end hears nothing; do not let the agent's audio pile up.
                try:
                    self._source.next_frame()
                except Exception:
                    self._callback_failed("source")
            return _SILENCE
        if not self._was_sending:
            sender.mark_gap()
            self._was_sending = True

        dtmf_due = self._dtmf is not None or (self._dtmf_queue and not self._inband)
        if dtmf_due and self._send_dtmf_tick(sender):
            return _SILENCE
        pcm: bytes | None
        if self._inband:
            pcm, starts = self._inband.popleft()
            if starts:
                self._stats.dtmf_out += 1
        else:
            source = self._source
            pcm = None
            if source is not None:
                try:
                    pcm = source.next_frame()
                except Exception:
                    self._callback_failed("source")
        if pcm is None:
            payload = self._silence_payload
            pcm = _SILENCE
        else:
            if len(pcm) != FRAME_BYTES:
                pcm = _fit(bytes(pcm))
            payload = self._encode(pcm)
        packet = sender.next_packet(payload, SAMPLES_PER_FRAME)
        if self._endpoint.send_rtp(packet):
            self._stats.on_packet_out(len(packet))
            self._sent_since_report = True
        return pcm

    def _send_dtmf_tick(self, sender: RtpSender) -> bool:
        """Play queued DTMF on this tick; False when the audio path should run instead."""
        dtmf = self._dtmf
        if dtmf is None:
            digits = self._dtmf_queue.popleft()
            te_pt = self._te_send_pt
            if te_pt is None:
                self._inband.extend(_inband_dtmf_frames(digits))
                return False
            dtmf = self._dtmf = DtmfSender(digits, clock_rate=CLOCK_RATE)
            self._dtmf_base_ts = sender.timestamp
        te_pt = self._te_send_pt
        step = dtmf.next_payload()
        if dtmf.done:
            self._dtmf = None
            sender.mark_gap()
        if step is None or te_pt is None:
            if dtmf.done and step is None:
                return False  # schedule over: this tick is audio again
            sender.advance(SAMPLES_PER_FRAME)
            return True
        payload, marker, offset = step
        if marker:
            self._stats.dtmf_out += 1
        packet = sender.next_packet_at(payload, te_pt, (self._dtmf_base_ts + offset) & 0xFFFFFFFF, marker)
        sender.advance(SAMPLES_PER_FRAME)
        if self._endpoint.send_rtp(packet):
            self._stats.on_packet_out(len(packet))
            self._sent_since_report = True
        return True

    # ------------------------------------------------------------------ RTCP

    def _rtcp_delay(self) -> float:
        return self.config.rtcp_interval * random.uniform(0.5, 1.5)

    def _send_report(self, now: float, *, bye: bool = False) -> None:
        sender = self._sender
        ssrc = sender.ssrc
        blocks: list[ReportBlock] = []
        block = self._reception.report_block(now)
        if block is not None:
            blocks.append(block)
        report: RtcpPacket
        if self._sent_since_report:
            # The last packet was stamped at this tick; map wall time to it.
            wall = self._wall_clock() - (self._clock() - now)
            report = SenderReport(
                ssrc,
                ntp_from_unix(wall),
                (sender.timestamp - SAMPLES_PER_FRAME) & 0xFFFFFFFF,
                sender.packets_sent & 0xFFFFFFFF,
                sender.octets_sent & 0xFFFFFFFF,
                blocks,
            )
        else:
            report = ReceiverReport(ssrc, blocks)
        self._sent_since_report = False
        packets: list[RtcpPacket] = [report, SourceDescription.with_cname(ssrc, self._cname)]
        if bye:
            packets.append(Bye([ssrc]))
        if self._endpoint.send_rtcp(serialize_rtcp(packets)):
            self._stats.rtcp_out += 1

    # ------------------------------------------------------------------ stats

    def _callback_failed(self, what: str) -> None:
        self._callback_errors += 1
        n = self._callback_errors
        if n == 1 or n % 1000 == 0:
            log.exception("media %s callback failed for call %s (%d errors)", what, self.call_id, n)

    @property
    def jitter_buffer_stats(self) -> JitterBufferStats:
        """The jitter buffer's live counters (cheap: for metrics read at any time)."""
        return self._jb.stats

    def stats(self) -> dict[str, object]:
        st = self._stats
        ep = self._endpoint
        st.update_from_reception(self._reception)
        st.update_from_jitter_buffer(self._jb.stats)
        st.dropped_foreign_source = ep.dropped_foreign
        st.malformed = ep.malformed + ep.rtcp_malformed + self._dtmf_rx.malformed
        out: dict[str, object] = dict(st.as_dict())
        locked = ep.locked
        out.update(
            call_id=self.call_id,
            local_port=self.rtp_port,
            ssrc=self._sender.ssrc,
            codec=self._codec or None,
            remote_source=f"{locked[0]}:{locked[1]}" if locked is not None else None,
            remote_locked=ep.lock_final,
            sending=self._sending,
            on_hold=self._on_hold,
            dropped_foreign=ep.dropped_foreign,
            rtp_malformed=ep.malformed,
            rtcp_malformed=ep.rtcp_malformed,
            unexpected_pt=ep.unexpected_pt,
            send_errors=ep.send_errors,
            dtmf_malformed=self._dtmf_rx.malformed,
            dtmf_pending=self.dtmf_pending,
            rtcp_bye_in=self._rtcp_bye_in,
            remote_fraction_lost=self._remote_fraction_lost,
            remote_jitter_ms=self._remote_jitter_ms,
            remote_cumulative_lost=self._remote_cumulative_lost,
            media_timed_out=self._timed_out,
            callback_errors=self._callback_errors + ep.handler_errors,
            jitter_buffer=self._jb.stats.as_dict(),
        )
        return out
