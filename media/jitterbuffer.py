"""Adaptive, timestamp-based playout (jitter) buffer. Sans-I/O.

``JitterBuffer(*, clock_rate=8000, frame_ms=20, min_delay_ms=20, max_delay_ms=60,
initial_delay_ms=40, bytes_per_sample=1, max_conceal_frames=3, history=100,
base_window=50, late_resync_s=0.2, jump_resync_s=0.5, max_frames=50,
is_quiet=None, trim_after=10)``

``put(seq, timestamp, ssrc, payload, marker, now) -> None``
    Store one received packet (``now`` = arrival, monotonic seconds). Packets are
    keyed by RTP timestamp; a payload holding k whole frames (k * frame samples *
    ``bytes_per_sample`` bytes) is split into k frames. Other payload sizes are
    kept as one frame, so the stream's ptime should be a multiple of ``frame_ms``.
``get(now) -> Frame``
    Call once per ``frame_ms`` playout tick. Returns one of
    ``Frame.kind == FrameKind.AUDIO``      the payload for this slot,
    ``FrameKind.CONCEALED``                the slot is missing (loss, or a frame
                                           inserted to grow the delay); ``payload``
                                           is the last good payload for the caller
                                           to repeat/fade (``consecutive`` counts the
                                           non-audio frames in a row), at most
                                           ``max_conceal_frames`` in a row,
    ``FrameKind.SILENCE``                  nothing to play (before the first packet,
                                           while pre-filling, or underrun);
                                           ``payload`` is None.
``reset()`` forgets the stream; ``stats`` is the live :class:`JitterBufferStats`.

Stats (``JitterBufferStats``, updated in place; ``as_dict()``)
    ``target_delay_ms``, ``jitter_ms`` (RFC 3550 estimator, arrival order),
    ``buffered_frames``, ``packets`` (put calls), ``played`` (AUDIO frames),
    ``late`` (slot already played), ``dropped`` (audio discarded to cut delay,
    overflow or slot collisions), ``duplicates``, ``concealed`` (CONCEALED frames
    for missing slots), ``inserted`` (frames held back to grow the delay),
    ``trimmed`` (quiet frames skipped to shed delay the target no longer needs),
    ``underruns`` (SILENCE frames after playout began), ``resyncs``,
    ``ssrc_changes``.

How it works
    Each packet's ``offset = arrival - timestamp / clock_rate`` is tracked; the
    minimum over the last ``base_window`` packets is the base (the least-delayed
    path) and ``peak`` is the largest ``offset - base`` over the last ``history``
    packets (both windows move in blocks of 10 packets, so they reach up to 9
    packets further back). The target delay is ``clamp(peak + frame, min_delay, max_delay)``;
    ``initial_delay_ms`` is a floor for the first ``history`` packets of a stream.
    The slot due at playout time ``t`` is ``(t - base - target) * clock_rate``, and
    ``get`` compares it with its cursor. More than half a frame early, it holds a
    slot (a CONCEALED repeat if audio is buffered), so packets up to
    ``target - frame/2`` behind the fastest path still make it. Half a frame late,
    it skips a slot only while nothing is buffered (no audio lost); a whole frame
    late, it drops one frame. That bounds the delay under clock drift and follows
    the target as jitter changes. With ``is_quiet`` (a predicate on a payload), a
    lateness of half a frame or more that lasts ``trim_after`` ticks with audio
    buffered is shed by skipping the next quiet frame (``trimmed``): otherwise a
    steady stream keeps up to a frame more delay than its target for good once the
    target falls (as it does when the initial delay gives way). A whole frame late,
    the next quiet frame is skipped at once, and audio is dropped only two frames
    late, so speech is not cut to shed delay that a pause can shed.
    Ticks are assumed to be ``frame_ms`` apart: the
    ``now`` passed to ``get`` only slowly steers a virtual playout clock, so late or
    bunched ticks (a catch-up burst) cause no drops; after a pause of more than
    0.2 s the clock snaps to ``now`` and stale frames are skipped.

Discontinuities
    A new SSRC resets the stream. A packet that is newer by sequence number but
    whose timestamp went backwards, or leapt more than ``jump_resync_s`` ahead of
    real time, means the sender's clock jumped: the timeline continues where the
    sequence number says, without a gap (``resyncs`` += 1). If timestamps jump
    ahead together with the sequence number the buffer starts a new timeline. If
    packets keep arriving late for ``late_resync_s`` (sequence and timestamp both
    restarted), it starts a new timeline instead of waiting. Packets whose slot
    was already played are counted ``late`` and dropped; a repeated (timestamp,
    seq) pair is a duplicate.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Frame", "FrameKind", "JitterBuffer", "JitterBufferStats"]

Buffer = bytes | bytearray | memoryview


class FrameKind(enum.Enum):
    AUDIO = "audio"
    CONCEALED = "concealed"
    SILENCE = "silence"


@dataclass(slots=True)  # not frozen: one is made per tick and call, and frozen __init__ costs 3x
class Frame:
    kind: FrameKind
    payload: bytes | None = None
    timestamp: int | None = None  # RTP timestamp (32-bit) of the slot, None if not playing
    marker: bool = False
    consecutive: int = 0  # non-audio frames in a row, this one included

    @property
    def is_audio(self) -> bool:
        return self.kind is FrameKind.AUDIO

    @property
    def concealed(self) -> bool:
        return self.kind is FrameKind.CONCEALED

    @property
    def silence(self) -> bool:
        return self.kind is FrameKind.SILENCE


@dataclass(slots=True)
class JitterBufferStats:
    target_delay_ms: float = 0.0
    jitter_ms: float = 0.0
    buffered_frames: int = 0
    packets: int = 0
    played: int = 0
    late: int = 0
    dropped: int = 0
    duplicates: int = 0
    concealed: int = 0
    inserted: int = 0
    trimmed: int = 0
    underruns: int = 0
    resyncs: int = 0
    ssrc_changes: int = 0

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


_WAITING = Frame(FrameKind.SILENCE)
_BLOCK = 10  # packets per block of the timing windows
_PLAYED_RING = 128


class JitterBuffer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_ms: int = 20,
        min_delay_ms: float = 20.0,
        max_delay_ms: float = 60.0,
        initial_delay_ms: float = 40.0,
        bytes_per_sample: int | None = 1,
        max_conceal_frames: int = 3,
        history: int = 100,
        base_window: int = 50,
        late_resync_s: float = 0.2,
        jump_resync_s: float = 0.5,
        max_frames: int = 50,
        is_quiet: Callable[[bytes], bool] | None = None,
        trim_after: int = 10,
    ) -> None:
        if clock_rate <= 0 or frame_ms <= 0:
            raise ValueError("clock_rate and frame_ms must be positive")
        if not 0 < min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 < min_delay_ms <= max_delay_ms")
        self.clock_rate = clock_rate
        self.frame_samples = clock_rate * frame_ms // 1000
        self._frame_s = frame_ms / 1000.0
        self._min_delay = min_delay_ms / 1000.0
        self._max_delay = max_delay_ms / 1000.0
        self._initial_delay = min(max(initial_delay_ms / 1000.0, self._min_delay), self._max_delay)
        self._bps = bytes_per_sample
        self._frame_bytes = self.frame_samples * bytes_per_sample if bytes_per_sample else -1
        self._max_conceal = max_conceal_frames
        self._history = history
        self._base_window = base_window
        self._late_resync = late_resync_s
        self._jump_resync = jump_resync_s
        self._max_frames = max_frames
        self._is_quiet = is_quiet
        self._trim_after = max(1, trim_after)
        # How late (in frames) audio is dropped: later with quiet frames to skip instead.
        self._drop_late = 1.0 if is_quiet is None else 2.0
        self._stats = JitterBufferStats()
        self._ssrc: int | None = None
        self._jitter = 0.0  # seconds, RFC 3550 estimator
        self._reset_stream()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the stream (the next packet starts a new one). Counters are kept."""
        self._ssrc = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._frames: dict[int, tuple[bytes, bool, int, int]] = {}
        self._cursor: int | None = None
        self._ts_ref = 0
        self._shift = 0
        self._max_seq = 0
        self._target = self._initial_delay
        self._stream_packets = 0
        self._jitter = 0.0
        self._prev_arrival: float | None = None
        self._prev_ext = 0
        self._vnow: float | None = None
        self._last_payload: bytes | None = None
        self._clear_timeline()

    def _clear_timeline(self) -> None:
        # Windowed minimum of the offsets and maximum of their excess over it, kept per block
        # of _BLOCK packets: a packet costs two comparisons, a block one min()/max() over the
        # few block extremes in the window.
        self._timeline_packets = 0
        self._in_block = 0
        self._block_min = math.inf
        self._block_peak = 0.0
        self._base_blocks: deque[float] = deque(maxlen=max(1, self._base_window // _BLOCK))
        self._peak_blocks: deque[float] = deque(maxlen=max(1, self._history // _BLOCK))
        self._blocks_min = math.inf
        self._blocks_peak = 0.0
        self._base = 0.0
        self._started = False
        self._consecutive = 0
        self._late_run: float | None = None
        self._late_ticks = 0  # ticks in a row at least half a frame late with audio buffered
        # The last _PLAYED_RING slots played and the seq each played (-1: none), to tell a
        # duplicate of a played packet from a late one.
        self._played_slot = [-1] * _PLAYED_RING
        self._played_seq = [-1] * _PLAYED_RING

    def _anchor(self, ext: int, offset: float, seq: int) -> None:
        """Start a new timeline at this packet (first packet, SSRC change, resync)."""
        self._frames.clear()
        self._clear_timeline()
        self._cursor = ext
        self._ts_ref = ext
        self._max_seq = seq
        self._prev_arrival = None
        self._push_timing(offset)

    @property
    def stats(self) -> JitterBufferStats:
        """Live counters; the gauges (target delay, jitter, buffered frames) are read now."""
        self._update_gauges()
        return self._stats

    def _update_gauges(self) -> None:
        self._stats.target_delay_ms = self._target * 1000.0
        self._stats.jitter_ms = self._jitter * 1000.0
        self._stats.buffered_frames = len(self._frames)

    # ------------------------------------------------------------------ timing

    def _push_timing(self, offset: float) -> None:
        block_min = self._block_min
        if offset < block_min:
            self._block_min = block_min = offset
        blocks_min = self._blocks_min
        base = self._base = block_min if block_min < blocks_min else blocks_min
        d = offset - base
        if d > self._block_peak:
            self._block_peak = d
        peak = self._block_peak if self._block_peak > self._blocks_peak else self._blocks_peak
        self._stream_packets += 1
        self._timeline_packets += 1
        n = self._in_block + 1
        if n == _BLOCK:
            self._base_blocks.append(block_min)
            self._blocks_min = min(self._base_blocks)
            self._peak_blocks.append(self._block_peak)
            self._blocks_peak = max(self._peak_blocks)
            self._block_min = math.inf
            self._block_peak = 0.0
            n = 0
        self._in_block = n
        if self._timeline_packets > 1:
            target = peak + self._frame_s
            if self._stream_packets < self._history and target < self._initial_delay:
                target = self._initial_delay
            if target < self._min_delay:
                target = self._min_delay
            elif target > self._max_delay:
                target = self._max_delay
            self._target = target

    def _note_jitter(self, ext: int, now: float) -> None:
        if self._prev_arrival is not None:
            d = (now - self._prev_arrival) - (ext - self._prev_ext) / self.clock_rate
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._prev_arrival = now
        self._prev_ext = ext

    # ------------------------------------------------------------------ input

    def put(self, seq: int, timestamp: int, ssrc: int, payload: Buffer, marker: bool, now: float) -> None:
        st = self._stats
        st.packets += 1
        seq &= 0xFFFF
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                st.ssrc_changes += 1
                st.resyncs += 1
                self._reset_stream()
            self._ssrc = ssrc
        ts = timestamp & 0xFFFFFFFF
        data = bytes(payload)
        if self._cursor is None:
            self._anchor(ts, now - ts / self.clock_rate, seq)
            self._note_jitter(ts, now)
            self._store(ts, data, marker, seq)
            return

        # Internal timeline position: raw timestamps extended to 64 bits, minus the
        # shift that absorbed earlier timestamp discontinuities.
        raw_ref = self._ts_ref + self._shift
        ext = raw_ref + (((ts - raw_ref + 0x80000000) & 0xFFFFFFFF) - 0x80000000) - self._shift
        dseq = ((seq - self._max_seq + 0x8000) & 0xFFFF) - 0x8000
        newer = 0 < dseq < 3000
        offset = now - ext / self.clock_rate
        if newer and (ext < self._ts_ref or offset < self._base - self._jump_resync):
            # A newer packet whose timestamp went backwards or leapt ahead of real
            # time: the sender's clock jumped. Continue the timeline as seq says.
            mapped = self._ts_ref + dseq * self.frame_samples
            self._shift += ext - mapped
            ext = mapped
            offset = now - ext / self.clock_rate
            self._prev_arrival = None
            st.resyncs += 1
        elif offset < self._base - self._jump_resync:
            st.resyncs += 1
            self._anchor(ext, offset, seq)
            self._note_jitter(ext, now)
            self._store(ext, data, marker, seq)
            return
        if newer:
            self._max_seq = seq
        if ext > self._ts_ref:
            self._ts_ref = ext

        cursor = self._cursor
        held = self._frames.get(ext)
        ring = (ext // self.frame_samples) % _PLAYED_RING
        if (held is not None and held[2] == seq) or (
            self._played_slot[ring] == ext and self._played_seq[ring] == seq
        ):
            st.duplicates += 1
            return
        prev = self._prev_arrival  # _note_jitter, inline: this runs for every packet
        if prev is not None:
            d = (now - prev) - (ext - self._prev_ext) / self.clock_rate
            self._jitter += ((d if d >= 0.0 else -d) - self._jitter) / 16.0
        self._prev_arrival = now
        self._prev_ext = ext
        self._push_timing(offset)

        if ext < cursor:
            if not self._started and cursor - ext <= self._max_frames * self.frame_samples:
                # Reordered before playout began: move the start back.
                self._cursor = cursor - -(-(cursor - ext) // self.frame_samples) * self.frame_samples
            else:
                st.late += 1
                if self._late_run is None:
                    self._late_run = now
                elif now - self._late_run >= self._late_resync:
                    # Everything has been late for a while (e.g. seq and timestamp
                    # both restarted): start a new timeline instead of waiting.
                    st.resyncs += 1
                    self._anchor(ext, offset, seq)
                    self._note_jitter(ext, now)
                    self._store(ext, data, marker, seq)
                return
        self._late_run = None
        self._store(ext, data, marker, seq)

    def _store(self, ext: int, data: bytes, marker: bool, seq: int) -> None:
        cursor = self._cursor
        assert cursor is not None
        fs = self.frame_samples
        rem = (ext - cursor) % fs
        if not rem and len(data) == self._frame_bytes:
            # One frame on the grid: the usual packet.
            frames = self._frames
            if (ext - cursor) // fs >= self._max_frames or ext in frames:
                self._stats.dropped += 1
            else:
                frames[ext] = (data, marker, seq, (ext + self._shift) & 0xFFFFFFFF)
            return
        if rem:
            if not self._frames:
                # New talkspurt off the old grid: shift the grid by under half a frame.
                self._cursor = cursor = cursor + (rem if rem <= fs // 2 else rem - fs)
            else:
                ext = cursor + round((ext - cursor) / fs) * fs
                if ext < cursor:
                    self._stats.late += 1
                    return
        parts = 1
        if self._bps:
            frame_bytes = fs * self._bps
            if len(data) > frame_bytes and len(data) % frame_bytes == 0:
                parts = len(data) // frame_bytes
        for i in range(parts):
            key = ext + i * fs
            if (key - cursor) // fs >= self._max_frames:
                self._stats.dropped += parts - i
                return
            if key in self._frames:
                self._stats.dropped += 1
                continue
            chunk = data if parts == 1 else data[i * len(data) // parts : (i + 1) * len(data) // parts]
            self._frames[key] = (chunk, marker and i == 0, seq, (key + self._shift) & 0xFFFFFFFF)

    # ------------------------------------------------------------------ output

    def get(self, now: float) -> Frame:
        # The virtual playout clock: one frame per call, steered slowly towards `now`.
        v = self._vnow
        if v is None:
            vnow = now
        else:
            err = now - v - self._frame_s
            vnow = now if err > 0.2 or err < -0.2 else now - err * 0.95
        self._vnow = vnow
        cursor = self._cursor
        if cursor is None:
            return _WAITING
        st = self._stats
        fs = self.frame_samples
        e = ((vnow - self._base - self._target) * self.clock_rate - cursor) / fs
        frames = self._frames

        if e >= 4.0:
            # Far behind (ticks stopped for a while): jump to where we should be.
            k = int(e)
            end = cursor + k * fs
            for key in [key for key in frames if key < end]:
                del frames[key]
                st.dropped += 1
            cursor = self._cursor = end
            e -= k

        # Playing early risks late packets, so more than half a frame early always
        # holds a slot (a repeat when audio is buffered). Playing late only costs
        # latency: half a frame late skips a slot only while nothing is buffered
        # (no audio touched), a whole frame late drops one frame.
        empty = not frames
        if not self._started:
            if e < -0.5:
                return _WAITING
            self._started = True
        elif e < -0.5:
            st.inserted += 1
            frame = self._missing_frame(cursor, inserted=True)
            return frame
        elif e >= self._drop_late or (e >= 0.5 and empty):
            if frames.pop(cursor, None) is not None:
                st.dropped += 1
            self._mark_played(cursor, -1)
            cursor += fs
            self._late_ticks = 0
        elif e >= 0.5 and self._is_quiet is not None:
            # Half a frame late or more with audio buffered: delay the target no longer
            # asks for (it fell, or the sender's clock runs fast). Once that has lasted
            # trim_after ticks (at once from a whole frame late), the next quiet frame is
            # skipped to shed it; audio is dropped only two frames late.
            self._late_ticks += 1
            if self._late_ticks >= self._trim_after or e >= 1.0:
                held = frames.get(cursor)
                if held is not None and self._is_quiet(held[0]):
                    del frames[cursor]
                    self._mark_played(cursor, held[2])
                    st.trimmed += 1
                    cursor += fs
                    self._late_ticks = 0
        if e < 0.5:
            self._late_ticks = 0

        item = frames.pop(cursor, None)
        self._cursor = cursor + fs
        if item is None:
            self._mark_played(cursor, -1)
            frame = self._missing_frame(cursor, inserted=False)
        else:
            payload, marker, seq, raw_ts = item
            ring = (cursor // fs) % _PLAYED_RING  # _mark_played, inline
            self._played_slot[ring] = cursor
            self._played_seq[ring] = seq
            self._last_payload = payload
            self._consecutive = 0
            st.played += 1
            frame = Frame(FrameKind.AUDIO, payload, raw_ts, marker, 0)
        return frame

    def _missing_frame(self, slot: int, *, inserted: bool) -> Frame:
        self._consecutive += 1
        ts = (slot + self._shift) & 0xFFFFFFFF
        last = self._last_payload
        if last is not None and self._consecutive <= self._max_conceal:
            if not inserted:
                self._stats.concealed += 1
            return Frame(FrameKind.CONCEALED, last, ts, False, self._consecutive)
        if not inserted:
            self._stats.underruns += 1
        return Frame(FrameKind.SILENCE, None, ts, False, self._consecutive)

    def _mark_played(self, slot: int, seq: int) -> None:
        ring = (slot // self.frame_samples) % _PLAYED_RING
        self._played_slot[ring] = slot
        self._played_seq[ring] = seq
