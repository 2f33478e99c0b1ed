"""StereoRecorder: channels, wall-clock alignment, and header repair after a crash."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media.recording import (
    StereoRecorder,
    WavRepairError,
    find_unfinished,
    finish_unfinished,
    part_path,
    repair_wav,
)

RATE = 8000
FRAME = 160


def tone(freq: float, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2")


def frames_of(pcm: np.ndarray) -> list[bytes]:
    return [pcm[i : i + FRAME].tobytes() for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[int(np.argmax(spectrum))])


def test_left_is_caller_right_is_played(tmp_path: Path) -> None:
    path = tmp_path / "acct" / "call.wav"
    rec = StereoRecorder(path)
    left, right = frames_of(tone(1000, 2.0)), frames_of(tone(440, 2.0))
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        rec.on_frames(a, b, 100.0 + i * 0.02)
    info = rec.close()

    assert info.path == path and path.exists() and not part_path(path).exists()
    assert info.frames == 2 * RATE and info.duration_seconds == pytest.approx(2.0)
    assert info.bytes == path.stat().st_size == 44 + 2 * RATE * 4
    data, rate = sf.read(path, dtype="int16")
    assert rate == RATE and data.shape == (2 * RATE, 2)
    assert peak_hz(data[:, 0]) == pytest.approx(1000, abs=5)
    assert peak_hz(data[:, 1]) == pytest.approx(440, abs=5)
    # Sample-exact: what was fed is what is stored.
    assert data[:, 0].tobytes() == b"".join(left)
    assert data[:, 1].tobytes() == b"".join(right)
    # A reader that trusts the header (not just libsndfile) sees the same thing.
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        assert w.getnframes() == 2 * RATE


def test_missed_ticks_become_silence_and_length_follows_the_clock(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "gap.wav")
    one = tone(1000, 0.02).tobytes()
    t = 50.0
    for _ in range(10):
        rec.on_frames(one, one, t)
        t += 0.02
    t += 1.234  # the media loop stalled: ticks were missed
    for _ in range(10):
        rec.on_frames(one, one, t)
        t += 0.02
    info = rec.close()

    wall = t - 50.0
    assert abs(info.duration_seconds - wall) <= 0.02
    data, _ = sf.read(tmp_path / "gap.wav", dtype="int16")
    assert not data[10 * FRAME : 10 * FRAME + int(1.2 * RATE)].any()  # the gap is silence on both sides
    assert data[: 10 * FRAME].any() and data[-10 * FRAME :].any()


def test_jitter_below_half_a_frame_adds_nothing(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "jitter.wav")
    rng = np.random.default_rng(1)
    for i in range(500):
        rec.on_frames(b"\x01\x00" * FRAME, b"", 10.0 + i * 0.02 + float(rng.uniform(-0.009, 0.009)))
    info = rec.close()
    assert info.frames == 500 * FRAME
    data, _ = sf.read(tmp_path / "jitter.wav", dtype="int16")
    assert (data[:, 0] == 1).all() and not data[:, 1].any()  # empty/short frames are padded with silence


def test_close_with_now_pads_a_silent_tail(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "tail.wav")
    for i in range(5):
        rec.on_frames(b"\x00" * 320, b"\x00" * 320, i * 0.02)
    info = rec.close(now=2.0)
    assert abs(info.duration_seconds - 2.0) <= 0.02


def test_flushes_in_blocks_not_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "blocks.wav"
    rec = StereoRecorder(path, flush_seconds=0.5)
    part = part_path(path)
    sizes = []
    for i in range(60):
        rec.on_frames(b"\x01" * 320, b"\x02" * 320, i * 0.02)
        sizes.append(part.stat().st_size)
    rec.close()
    # 25 frames (0.5 s) per write: the file grows twice in 60 frames.
    assert len(set(sizes)) == 3
    assert sizes[23] == 44 and sizes[24] == 44 + 25 * FRAME * 4


def _header_sizes(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()[:44]
    return struct.unpack_from("<I", raw, 4)[0], struct.unpack_from("<I", raw, 40)[0]


def test_repair_after_copy_of_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "open.wav"
    rec = StereoRecorder(path)
    left = tone(1000, 1.0)
    for i, f in enumerate(frames_of(left)):
        rec.on_frames(f, f, i * 0.02)
    rec.flush()
    crashed = tmp_path / "crashed.wav"
    shutil.copyfile(part_path(path), crashed)  # what the disk holds if the process dies now
    rec.close()

    assert _header_sizes(crashed) != (crashed.stat().st_size - 8, RATE * 4)
    with pytest.raises(wave.Error):
        wave.open(str(crashed))  # a strict reader cannot read it before the repair

    assert repair_wav(crashed) is True
    assert _header_sizes(crashed) == (crashed.stat().st_size - 8, RATE * 4)
    data, _ = sf.read(crashed, dtype="int16")
    assert data[:, 0].tobytes() == left.tobytes()
    assert repair_wav(crashed) is False  # already consistent
    assert repair_wav(path) is False  # a properly closed file is left alone


def test_repair_drops_a_torn_sample_frame(tmp_path: Path) -> None:
    path = tmp_path / "torn.wav"
    rec = StereoRecorder(path)
    rec.on_frames(b"\x01\x00" * FRAME, b"\x02\x00" * FRAME, 0.0)
    rec.abort()
    part = part_path(path)
    with part.open("ab") as f:
        f.write(b"\x03\x00\x04")  # a write cut in the middle of a stereo sample
    assert repair_wav(part) is True
    assert part.stat().st_size == 44 + FRAME * 4
    data, _ = sf.read(part, dtype="int16")
    assert data.shape == (FRAME, 2)


def test_repair_refuses_what_is_not_a_wav(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav.part"
    empty.write_bytes(b"")
    with pytest.raises(WavRepairError):
        repair_wav(empty)
    junk = tmp_path / "junk.wav.part"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x00" * 40)
    with pytest.raises(WavRepairError):
        repair_wav(junk)


CRASHER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from media.recording import StereoRecorder
    rec = StereoRecorder(sys.argv[1])
    t = np.arange(8000 * 3) / 8000
    left = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    right = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    for i in range(0, len(left), 160):
        rec.on_frames(left[i:i + 160].tobytes(), right[i:i + 160].tobytes(), i / 8000)
    os._exit(9)  # die without closing: no header update, buffered samples lost
    """
)


def test_process_killed_mid_recording_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "acct_a" / "call_x.wav"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(path)], env=env, timeout=60)
    assert proc.returncode == 9
    assert not path.exists()
    assert find_unfinished(tmp_path) == [part_path(path)]

    final = finish_unfinished(part_path(path))
    assert final == path and find_unfinished(tmp_path) == []
    data, rate = sf.read(path, dtype="int16")
    # 3 s were fed; at most one 0.5 s block was still in memory.
    assert rate == RATE and 2.5 * RATE <= len(data) <= 3 * RATE
    assert len(data) % (RATE // 2) == 0
    assert peak_hz(data[:, 0]) == pytest.approx(1000, abs=5)
    assert peak_hz(data[:, 1]) == pytest.approx(440, abs=5)
    with wave.open(str(path)) as w:
        assert w.getnframes() == len(data)


def test_find_unfinished_on_a_missing_dir(tmp_path: Path) -> None:
    assert find_unfinished(tmp_path / "nope") == []
