"""Stereo call recording to WAV, written incrementally, and repair after a crash.

``StereoRecorder(path, sample_rate=8000, flush_seconds=0.5)``
    Writes a 2-channel 16-bit PCM WAV: left = the called party, right = the
    agent audio as actually played out. While recording, the file is
    ``<path>.part``; :meth:`StereoRecorder.close` completes the header and
    renames it to ``path``, so a ``.wav`` file is always complete and a
    ``.wav.part`` file is one that was being written when the process died.
``on_frames(caller, played, now)``
    Called once per 20 ms media tick with one frame of PCM16 LE per side
    (320 bytes at 8 kHz; shorter input is padded with silence, longer is cut).
    ``now`` is the tick's clock (monotonic seconds). The file is aligned to that
    clock: when ``now`` is more than one frame past the slot the next frame is
    due in, the missed slots are filled with silence on both channels, so the
    file's length follows the call's duration within one frame. Frames that
    arrive early are written, never dropped: the caller should not replay
    missed ticks in a burst.
``close(now=None) -> RecordingInfo``
    Flushes, pads silence up to ``now`` when given, finalizes and renames.

Crash bound: samples are kept in memory and written every
``flush_seconds`` (0.5 s): a process crash loses at most that much audio, plus
the WAV header's sizes, which :func:`repair_wav` rebuilds from the file size.
Writes go to the OS page cache without fsync, so a power loss may lose more.

``repair_wav(path) -> bool``
    Rewrites the RIFF and data chunk sizes from the file size (and drops a
    trailing partial sample frame). True when it changed the file, False when
    the header was already consistent; :class:`WavRepairError` when the file is
    not a WAV that can be repaired (e.g. the crash came before the header).
``find_unfinished(local_dir) -> list[Path]``
    Every ``*.wav.part`` below ``local_dir``. :func:`finish_unfinished` repairs
    one and renames it to its ``.wav`` name.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "FRAME_SECONDS",
    "PART_SUFFIX",
    "RecordingInfo",
    "StereoRecorder",
    "WavRepairError",
    "find_unfinished",
    "finish_unfinished",
    "part_path",
    "repair_wav",
]

FRAME_SECONDS = 0.02
PART_SUFFIX = ".part"
_BYTES_PER_FRAME = 4  # 2 channels x 16 bit


class WavRepairError(ValueError):
    """The file is not a WAV whose header can be rebuilt."""


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    path: Path
    frames: int  # sample frames (one sample per channel), as soundfile counts them
    duration_seconds: float
    bytes: int


def part_path(path: Path) -> Path:
    """Where a recording lives while it is written."""
    return path.with_name(path.name + PART_SUFFIX)


class StereoRecorder:
    def __init__(
        self, path: str | os.PathLike[str], sample_rate: int = 8000, flush_seconds: float = 0.5
    ) -> None:
        if sample_rate <= 0 or (sample_rate * 20) % 1000:
            raise ValueError("sample_rate must give a whole number of samples per 20 ms")
        self.path = Path(path)
        self.part = part_path(self.path)
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate * 20 // 1000
        self._frame_bytes = self.samples_per_frame * 2
        self._frames_per_block = max(1, round(flush_seconds / FRAME_SECONDS))
        self._silence = bytes(self._frame_bytes)
        # Each side is appended as it comes (cheap, once per tick) and interleaved per block.
        self._left = bytearray()
        self._right = bytearray()
        self._buffered = 0  # 20 ms frames in _left/_right
        self._written = 0  # sample frames handed to soundfile
        self._ticks = 0  # 20 ms frames recorded (audio and silence)
        self._t0: float | None = None
        self._closed = False
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(
            self.part, "w", samplerate=sample_rate, channels=2, subtype="PCM_16", format="WAV"
        )

    @property
    def duration_seconds(self) -> float:
        return (self._written + self._buffered * self.samples_per_frame) / self.sample_rate

    def on_frames(self, caller: bytes, played: bytes, now: float) -> None:
        if self._closed:
            raise RuntimeError("recorder is closed")
        if self._t0 is None:
            self._t0 = now
        else:
            self._fill_to(now)
        fb = self._frame_bytes
        self._left += caller if len(caller) == fb else self._fit(caller)
        self._right += played if len(played) == fb else self._fit(played)
        self._advance()

    def _fit(self, pcm: bytes) -> bytes:
        size = min(len(pcm), self._frame_bytes) & ~1
        return bytes(pcm[:size]) + self._silence[size:]

    def _fill_to(self, now: float) -> None:
        assert self._t0 is not None
        slot = round((now - self._t0) / FRAME_SECONDS)
        missing = slot - self._ticks
        if missing > 0:
            self._silence_frames(missing)

    def _advance(self) -> None:
        self._buffered += 1
        self._ticks += 1
        if self._buffered >= self._frames_per_block:
            self._flush()

    def _silence_frames(self, frames: int) -> None:
        for _ in range(frames):
            self._left += self._silence
            self._right += self._silence
            self._advance()

    def _flush(self) -> None:
        if not self._buffered:
            return
        n = len(self._left) // 2
        block = np.empty((n, 2), dtype="<i2")
        block[:, 0] = np.frombuffer(self._left, dtype="<i2")
        block[:, 1] = np.frombuffer(self._right, dtype="<i2")
        self._file.write(block)
        self._written += n
        self._left.clear()
        self._right.clear()
        self._buffered = 0

    def flush(self) -> None:
        """Write what is buffered now (e.g. before a planned pause)."""
        self._flush()

    def close(self, now: float | None = None) -> RecordingInfo:
        """Finish the file. With `now`, silence is added up to that instant (a silent tail)."""
        if not self._closed:
            if now is not None and self._t0 is not None:
                self._fill_to(now)
            self._flush()
            self._file.close()
            self._closed = True
            os.replace(self.part, self.path)
        return RecordingInfo(
            path=self.path,
            frames=self._written,
            duration_seconds=self._written / self.sample_rate,
            bytes=self.path.stat().st_size,
        )

    def abort(self) -> None:
        """Stop writing and leave the `.part` file, for `finish_unfinished` to take up later."""
        if not self._closed:
            self._flush()
            self._file.close()
            self._closed = True


_RIFF = struct.Struct("<4sI4s")
_CHUNK = struct.Struct("<4sI")
_MAX_U32 = 0xFFFFFFFF


def repair_wav(path: str | os.PathLike[str]) -> bool:
    """Rebuild the RIFF and data sizes of a WAV whose writer died before closing it."""
    p = Path(path)
    with p.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        head = f.read(_RIFF.size)
        if len(head) < _RIFF.size:
            raise WavRepairError(f"{p}: too short for a RIFF header")
        riff, riff_size, wave = _RIFF.unpack(head)
        if riff != b"RIFF" or wave != b"WAVE":
            raise WavRepairError(f"{p}: not a RIFF/WAVE file")
        pos = _RIFF.size
        block_align = 0
        while True:
            f.seek(pos)
            raw = f.read(_CHUNK.size)
            if len(raw) < _CHUNK.size:
                raise WavRepairError(f"{p}: no data chunk")
            cid, csize = _CHUNK.unpack(raw)
            body = pos + _CHUNK.size
            if cid == b"fmt ":
                fmt = f.read(min(csize, 16))
                if len(fmt) < 16:
                    raise WavRepairError(f"{p}: truncated fmt chunk")
                block_align = struct.unpack_from("<H", fmt, 12)[0]
            elif cid == b"data":
                break
            pos = body + csize + (csize & 1)
        if block_align <= 0:
            raise WavRepairError(f"{p}: no fmt chunk before the data")

        # A writer that was killed leaves the data chunk last and its size stale.
        consistent = riff_size == size - 8 and body + csize <= size and csize % block_align == 0
        if consistent:
            return False
        data = size - body
        data -= data % block_align
        data = min(data, _MAX_U32 - (body - 8))
        end = body + data
        if end < size:
            f.truncate(end)
        f.seek(4)
        f.write(struct.pack("<I", end - 8))
        f.seek(pos + 4)
        f.write(struct.pack("<I", data))
        f.flush()
        os.fsync(f.fileno())
    return True


def find_unfinished(local_dir: str | os.PathLike[str]) -> list[Path]:
    """Recordings that were being written when the process stopped, oldest first."""
    root = Path(local_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.rglob(f"*.wav{PART_SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def finish_unfinished(part: str | os.PathLike[str]) -> Path:
    """Repair an unfinished recording and give it its final `.wav` name. Raises WavRepairError."""
    p = Path(part)
    if not p.name.endswith(PART_SUFFIX):
        raise ValueError(f"{p} is not a {PART_SUFFIX} file")
    repair_wav(p)
    final = p.with_name(p.name.removesuffix(PART_SUFFIX))
    os.replace(p, final)
    return final
