"""The agent's playout queue: any-length audio in, one 20 ms frame out per media tick. Sans-I/O.

``PlayoutQueue(*, frame_bytes=320, bytes_per_ms=16, max_ms=60_000, partial_hold_frames=1)``
    Holds PCM16 (8 kHz mono by default) that the agent sent, plus the agent's
    marks and a pending "hang up after playout", all placed at byte positions of
    one continuous stream. The media clock takes exactly one frame per tick with
    :meth:`next_frame`; chunks are concatenated without gaps, whatever their size.

    Positions are absolute byte offsets in the stream: ``head`` is what has been
    taken for playout, ``tail`` the end of what has been queued. A mark pushed
    with ``lag_bytes`` sits that far *after* the current tail; the bridge uses
    it for audio still inside its resampler, which reaches the queue later.

    * ``push_audio(pcm) -> int``: bytes accepted. The queue is bounded to
      ``max_ms`` of audio; the part of a chunk beyond that is refused and counted
      in ``overflow_bytes`` (the queued audio is never rewritten: a jump in the
      middle of a sentence is worse than a truncated end, and an agent that runs
      60 s ahead of the caller is broken anyway).
    * ``push_mark(name, lag_bytes=0) -> list[str]``: marks reached *now* (when
      nothing is queued before it), in order.
    * ``request_hangup(lag_bytes=0) -> bool``: True when nothing is left to
      play; otherwise ``hangup_due`` becomes True exactly when the frame holding
      the last queued byte is taken.
    * ``next_frame(hold=True) -> bytes | None``: one ``frame_bytes`` frame, or
      None for silence. A partial frame at the end of the queue waits up to
      ``partial_hold_frames`` ticks for the rest of its audio (agents that send
      10 ms chunks in real time stay gapless), then plays padded with silence.
      With a hang-up pending, or ``hold=False`` (the caller knows nothing more
      is on its way), it plays at once. Marks reached by the frame are
      appended to ``reached``; the caller drains it with :meth:`pop_reached`.
    * Standing lead: an agent that streams in real time and once gets a frame
      to the gateway a tick late (two arrive for the next tick) stays a frame
      ahead of playout, i.e. 20 ms late, for as long as it talks without a
      pause. When at every tick of ``trim_window`` ticks at least one whole
      frame beyond the one taken was queued, but no more than ``trim_max_frames``
      (a deeper queue is a TTS burst sent ahead on purpose), the next quiet
      frame (every sample within +-``quiet_level``) with a frame queued behind it
      is skipped. Speech is never cut, and a lead the agent's jitter needs is
      kept: one late reply in the window and nothing is trimmed. Counted in
      ``trimmed_bytes``; marks in a trimmed frame are reached with it.
    * ``clear() -> ClearResult``: barge-in. Drops all queued audio and every
      pending mark (returned in order), reports ``played_ms`` since the previous
      clear/reset and ``dropped_ms``; a pending hang-up becomes due at once.
    * ``reset()``: drop everything silently (a new agent connection).

    Counters: ``played_bytes`` (real audio taken, padding and trimmed frames excluded),
    ``trimmed_bytes``,
    ``cleared_bytes``, ``overflow_bytes``, ``reset_bytes``, ``underruns``
    (ticks that found a partial frame or nothing while audio was expected).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = ["FRAME_BYTES", "ClearResult", "PlayoutQueue"]

FRAME_BYTES: Final = 320  # 20 ms of PCM16 at 8 kHz
BYTES_PER_MS: Final = 16  # PCM16 at 8 kHz


@dataclass(frozen=True, slots=True)
class ClearResult:
    """What a clear discarded: pending marks in order, and how much was heard."""

    marks: tuple[str, ...]
    played_ms: int
    dropped_ms: int


class PlayoutQueue:
    """See the module docstring."""

    __slots__ = (
        "_base",
        "_chunks",
        "_hangup_at",
        "_lead_min",
        "_lead_ticks",
        "_marks",
        "_offset",
        "_silence",
        "_stall",
        "_trim_armed",
        "bytes_per_ms",
        "cleared_bytes",
        "frame_bytes",
        "hangup_due",
        "head",
        "max_bytes",
        "overflow_bytes",
        "partial_hold_frames",
        "played_bytes",
        "quiet_level",
        "reached",
        "reset_bytes",
        "tail",
        "trim_max_frames",
        "trim_window",
        "trimmed_bytes",
        "underruns",
    )

    def __init__(
        self,
        *,
        frame_bytes: int = FRAME_BYTES,
        bytes_per_ms: int = BYTES_PER_MS,
        max_ms: int = 60_000,
        partial_hold_frames: int = 1,
        trim_window: int = 50,
        trim_max_frames: int = 3,
        quiet_level: int = 64,
    ) -> None:
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ValueError("frame_bytes must be a positive even number")
        if bytes_per_ms <= 0 or max_ms <= 0 or partial_hold_frames < 0:
            raise ValueError("bytes_per_ms and max_ms must be positive, partial_hold_frames >= 0")
        if trim_window < 0 or trim_max_frames < 1 or quiet_level < 0:
            raise ValueError("need trim_window >= 0, trim_max_frames >= 1, quiet_level >= 0")
        self.frame_bytes = frame_bytes
        self.bytes_per_ms = bytes_per_ms
        self.max_bytes = max_ms * bytes_per_ms
        self.partial_hold_frames = partial_hold_frames
        # trim_window 0 turns trimming off.
        self.trim_window = trim_window
        self.trim_max_frames = trim_max_frames
        self.quiet_level = quiet_level
        self._silence = bytes(frame_bytes)
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # read position inside _chunks[0]
        self._marks: deque[tuple[int, str]] = deque()
        self._hangup_at: int | None = None
        self._stall = 0
        self._base = 0  # head at the last clear/reset, for played_ms
        self.head = 0
        self.tail = 0
        self.reached: list[str] = []
        self.hangup_due = False
        self.played_bytes = 0
        self.cleared_bytes = 0
        self.overflow_bytes = 0
        self.reset_bytes = 0
        self.underruns = 0
        self.trimmed_bytes = 0
        self._lead_min = 0  # least queued at a tick of the current window
        self._lead_ticks = 0
        self._trim_armed = False

    # ------------------------------------------------------------------ state

    @property
    def available(self) -> int:
        """Bytes of audio queued and not yet taken."""
        return self.tail - self.head

    @property
    def queued_ms(self) -> int:
        return self.available // self.bytes_per_ms

    @property
    def pending_marks(self) -> int:
        return len(self._marks)

    @property
    def hangup_pending(self) -> bool:
        return self._hangup_at is not None and not self.hangup_due

    def _ms(self, n: int) -> int:
        return round(n / self.bytes_per_ms)

    # ------------------------------------------------------------------ input

    def push_audio(self, pcm: bytes) -> int:
        n = len(pcm)
        if n == 0:
            return 0
        room = self.max_bytes - self.available
        if n > room:
            room -= room % 2
            self.overflow_bytes += n - room
            if room <= 0:
                return 0
            pcm = pcm[:room]
            n = room
        self._chunks.append(pcm)
        self.tail += n
        return n

    def push_mark(self, name: str, lag_bytes: int = 0) -> list[str]:
        self._marks.append((self.tail + max(0, lag_bytes), name))
        self._collect()
        return self.pop_reached()

    def request_hangup(self, lag_bytes: int = 0) -> bool:
        if self._hangup_at is None:
            self._hangup_at = self.tail + max(0, lag_bytes)
        if self._hangup_at <= self.head:
            self.hangup_due = True
        return self.hangup_due

    def pop_reached(self) -> list[str]:
        out, self.reached = self.reached, []
        return out

    # ------------------------------------------------------------------ output

    def next_frame(self, hold: bool = True) -> bytes | None:
        fb = self.frame_bytes
        avail = self.tail - self.head
        if avail >= fb:
            self._stall = 0
            frame = self._take(fb)
            if self.trim_window:
                frame = self._trim_lead(avail, frame)
        elif avail > 0:
            self._lead_gone()
            if hold and self._stall < self.partial_hold_frames and self._hangup_at is None:
                self._stall += 1
                self.underruns += 1
                return None
            self._stall = 0
            part = self._take(avail)
            frame = part + self._silence[: fb - avail]
        else:
            self._lead_gone()
            if self._marks or self.hangup_pending:
                self.underruns += 1
            return None
        self._collect()
        return frame

    def _trim_lead(self, avail: int, frame: bytes) -> bytes:
        """`frame` was just taken with `avail` bytes queued: play it, or skip it if it is a
        quiet frame of a standing lead (see the module docstring)."""
        fb = self.frame_bytes
        if self._trim_armed:
            if avail < 2 * fb or self._hangup_at is not None:
                self._trim_armed = False  # the lead went by itself, or the end is near
            elif self._quiet(frame):
                self._trim_armed = False
                self.trimmed_bytes += fb
                self.played_bytes -= fb
                return self._take(fb)
            return frame
        if self._lead_ticks == 0 or avail < self._lead_min:
            self._lead_min = avail
        self._lead_ticks += 1
        if self._lead_ticks >= self.trim_window:
            least = self._lead_min
            self._lead_ticks = 0
            self._trim_armed = 2 * fb <= least <= (self.trim_max_frames + 1) * fb
        return frame

    def _lead_gone(self) -> None:
        self._lead_ticks = 0
        self._trim_armed = False

    def _quiet(self, frame: bytes) -> bool:
        if frame == self._silence:
            return True
        samples = np.frombuffer(frame, dtype="<i2")
        level = self.quiet_level
        return bool(samples.max() <= level and samples.min() >= -level)

    def _take(self, n: int) -> bytes:
        chunk = self._chunks[0]
        off = self._offset
        end = off + n
        if end <= len(chunk):
            out = chunk[off:end] if off or end != len(chunk) else chunk
            if end == len(chunk):
                self._chunks.popleft()
                self._offset = 0
            else:
                self._offset = end
        else:
            parts = [chunk[off:]]
            need = n - (len(chunk) - off)
            self._chunks.popleft()
            self._offset = 0
            while need:
                chunk = self._chunks[0]
                if len(chunk) <= need:
                    parts.append(chunk)
                    need -= len(chunk)
                    self._chunks.popleft()
                else:
                    parts.append(chunk[:need])
                    self._offset = need
                    need = 0
            out = b"".join(parts)
        self.head += n
        self.played_bytes += n
        return out

    def _collect(self) -> None:
        head = self.head
        marks = self._marks
        while marks and marks[0][0] <= head:
            self.reached.append(marks.popleft()[1])
        if self._hangup_at is not None and self._hangup_at <= head:
            self.hangup_due = True

    # ------------------------------------------------------------------ barge-in

    def clear(self) -> ClearResult:
        names = tuple(name for _, name in self._marks)
        dropped = self.tail - self.head
        played = self.head - self._base
        self._drop_all()
        self.cleared_bytes += dropped
        if self._hangup_at is not None:
            self.hangup_due = True
        return ClearResult(names, self._ms(played), self._ms(dropped))

    def reset(self) -> None:
        self.reset_bytes += self.tail - self.head
        self._drop_all()
        self.reached = []
        self._hangup_at = None
        self.hangup_due = False

    def _drop_all(self) -> None:
        self._lead_gone()
        self._chunks.clear()
        self._offset = 0
        self._marks.clear()
        self.head = self.tail
        self._base = self.head
        self._stall = 0
