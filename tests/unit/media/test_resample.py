from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from media.errors import ResampleError
from media.resample import FrameResampler, Resampler

AMP = 10000.0


def tone(freq: float, rate: int, seconds: float = 1.0) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(AMP * np.sin(2 * math.pi * freq * t)).astype(np.int16)


def stream(r: Resampler, x: NDArray[np.int16], chunk: int) -> NDArray[np.int16]:
    parts = [r.process_array(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(parts)


def rms_db(x: NDArray[np.int16]) -> float:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return 20 * math.log10(max(rms, 1e-9) / (AMP / math.sqrt(2)))


def peak_hz(x: NDArray[np.int16], rate: int) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec))])


def steady(x: NDArray[np.int16], rate: int) -> NDArray[np.int16]:
    """Drop the warm-up (latency + filter settling) and the tail."""
    return x[int(0.1 * rate) : -int(0.02 * rate)]


@pytest.mark.parametrize("mid", [16000, 24000])
def test_1khz_roundtrip_keeps_frequency_and_level(mid: int) -> None:
    x = tone(1000, 8000)
    up = stream(Resampler(8000, mid), x, 160)
    assert len(up) == len(x) * mid // 8000
    assert peak_hz(steady(up, mid), mid) == pytest.approx(1000, abs=3)
    assert abs(rms_db(steady(up, mid))) < 0.5
    back = stream(Resampler(mid, 8000), up, mid // 50)
    assert len(back) == len(x)
    assert peak_hz(steady(back, 8000), 8000) == pytest.approx(1000, abs=3)
    assert abs(rms_db(steady(back, 8000))) < 0.5


def test_8k_to_24k_tone() -> None:
    y = stream(Resampler(8000, 24000), tone(1000, 8000), 160)
    s = steady(y, 24000)
    assert peak_hz(s, 24000) == pytest.approx(1000, abs=3)
    assert abs(rms_db(s)) < 0.5


@pytest.mark.parametrize("src", [16000, 24000])
def test_out_of_band_tone_is_suppressed_when_downsampling(src: int) -> None:
    y = stream(Resampler(src, 8000), tone(6000, src), src // 50)
    assert rms_db(steady(y, 8000)) < -40  # would alias to 2 kHz at full level otherwise


def test_upsampling_leaves_no_image_above_4khz() -> None:
    y = steady(stream(Resampler(8000, 16000), tone(3000, 8000), 160), 16000)
    spec = np.abs(np.fft.rfft(y.astype(np.float64) * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    image = spec[freqs > 4500].max()
    assert 20 * math.log10(image / spec.max()) < -40  # the 5 kHz image of 3 kHz


@pytest.mark.parametrize("pair", [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000)])
def test_chunked_equals_one_shot_and_sizes_are_exact(pair: tuple[int, int]) -> None:
    a, b = pair
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(a) * 3000).astype(np.int16)
    one = Resampler(a, b).process_array(x)
    r = Resampler(a, b)
    frame_in = a // 50
    outs = [r.process_array(x[i : i + frame_in]) for i in range(0, len(x), frame_in)]
    assert {len(o) for o in outs} == {b // 50}  # 20 ms in -> 20 ms out, from the first chunk
    chunked = np.concatenate(outs)
    assert len(chunked) == len(one) == len(x) * b // a
    assert np.max(np.abs(chunked.astype(np.int32) - one)) <= 4
    assert r.latency_samples > 0
    assert r.latency_samples * 1000 / b <= 40  # ms


def test_irregular_chunks_keep_total_and_no_clicks() -> None:
    x = tone(440, 8000, 2.0)
    r = Resampler(8000, 24000)
    rng = np.random.default_rng(9)
    parts = []
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 400))
        parts.append(r.process(x[i : i + n].astype("<i2").tobytes()))
        i += n
    y = np.frombuffer(b"".join(parts), "<i2")
    assert len(y) == len(x) * 3
    s = steady(y, 24000)
    # A 440 Hz sine changes by at most 2*pi*f*A/fs per sample; a seam would jump.
    max_step = 2 * math.pi * 440 * AMP / 24000
    assert np.max(np.abs(np.diff(s.astype(np.int32)))) < max_step * 1.1


def test_bytes_api_and_reset() -> None:
    r = Resampler(8000, 16000)
    x = tone(1000, 8000, 0.2)
    first = r.process(x.tobytes())
    assert len(first) == 2 * len(x) * 2
    r.reset()
    assert r.process(x.tobytes()) == first
    assert r.process(b"") == b""


def test_same_rate_passthrough() -> None:
    r = Resampler(16000, 16000)
    data = tone(500, 16000, 0.02).tobytes()
    assert r.process(data) == data


def test_errors() -> None:
    with pytest.raises(ResampleError):
        Resampler(8000, 11025)
    with pytest.raises(ResampleError):
        Resampler(0, 8000)
    r = Resampler(8000, 16000)
    with pytest.raises(ResampleError):
        r.process(b"\x00\x01\x02")
    with pytest.raises(ResampleError):
        r.process_array(np.zeros(4, dtype=np.float32))
    with pytest.raises(ResampleError):
        r.process_array(np.zeros((2, 2), dtype=np.int16))


# --------------------------------------------------------------------------- FrameResampler


def frames(x: NDArray[np.int16], size: int) -> list[bytes]:
    return [x[i : i + size].astype("<i2").tobytes() for i in range(0, len(x), size)]


@pytest.mark.parametrize("pair", [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (8000, 48000)])
def test_frame_resampler_matches_the_streaming_resampler(pair: tuple[int, int]) -> None:
    a, b = pair
    x = (np.random.default_rng(3).standard_normal(a) * 3000).astype(np.int16)
    bank = FrameResampler(a, b)
    slot = bank.open()
    batched = np.frombuffer(b"".join(bank.process(slot, f) for f in frames(x, a // 50)), "<i2")
    streamed = Resampler(a, b).process_array(x)
    assert len(batched) == len(streamed) == len(x) * b // a
    assert np.max(np.abs(batched.astype(np.int32) - streamed)) <= 2  # float32 vs float64 sums


def test_frame_resampler_runs_many_streams_at_once_like_one_by_one() -> None:
    rng = np.random.default_rng(11)
    signals = [(rng.standard_normal(8000) * 3000).astype(np.int16) for _ in range(5)]
    batch, alone = FrameResampler(8000, 16000), FrameResampler(8000, 16000)
    slots = [batch.open() for _ in signals]
    solo = [alone.open() for _ in signals]
    got: list[list[bytes]] = [[] for _ in signals]
    want: list[list[bytes]] = [[] for _ in signals]
    for tick in range(50):
        for i, sig in enumerate(signals):
            if (tick + i) % 7 == 0:
                continue  # streams skip ticks independently
            frame = sig[tick * 160 : (tick + 1) * 160].tobytes()
            batch.submit(slots[i], frame, got[i].append)
            want[i].append(alone.process(solo[i], frame))
        assert batch.run() == sum(1 for i in range(5) if (tick + i) % 7)
    for g, w in zip(got, want, strict=True):
        a = np.frombuffer(b"".join(g), "<i2").astype(np.int32)
        b = np.frombuffer(b"".join(w), "<i2").astype(np.int32)
        assert len(a) == len(b) == 320 * len(w)
        assert np.max(np.abs(a - b)) <= 1  # BLAS may sum a matrix in another order than a vector


def test_frame_resampler_second_frame_of_a_stream_continues_the_first() -> None:
    x = tone(440, 8000, 0.04)
    bank, ref = FrameResampler(8000, 16000), FrameResampler(8000, 16000)
    s, r = bank.open(), ref.open()
    out: list[bytes] = []
    bank.submit(s, x[:160].tobytes(), out.append)
    bank.submit(s, x[160:].tobytes(), out.append)
    bank.run()
    want = ref.process(r, x[:160].tobytes()) + ref.process(r, x[160:].tobytes())
    diff = np.frombuffer(b"".join(out), "<i2").astype(np.int32) - np.frombuffer(want, "<i2")
    assert len(out) == 2 and np.max(np.abs(diff)) <= 1


def test_frame_resampler_tone_level_and_no_alias() -> None:
    bank = FrameResampler(16000, 8000)
    slot = bank.open()
    y = np.frombuffer(b"".join(bank.process(slot, f) for f in frames(tone(6000, 16000), 320)), "<i2")
    assert rms_db(steady(y, 8000)) < -40
    up = FrameResampler(8000, 16000)
    slot = up.open()
    y = np.frombuffer(b"".join(up.process(slot, f) for f in frames(tone(1000, 8000), 160)), "<i2")
    assert abs(rms_db(steady(y, 16000))) < 0.5
    assert up.delay_ms < 5


def test_frame_resampler_slots_reset_close_and_errors() -> None:
    bank = FrameResampler(8000, 16000)
    a = bank.open()
    first = bank.process(a, tone(1000, 8000, 0.02).tobytes())
    bank.process(a, tone(300, 8000, 0.02).tobytes())
    bank.reset(a)
    assert bank.process(a, tone(1000, 8000, 0.02).tobytes()) == first
    more = [bank.open() for _ in range(20)]  # grows past its first 8 slots
    assert len({*more, a}) == 21
    out: list[bytes] = []
    bank.submit(more[0], bytes(100), out.append)  # short frames are zero-padded
    bank.close(more[0])  # its queued frame goes with it
    assert bank.run() == 0 and out == []
    assert len(bank.process(a, bytes(2))) == 640
    with pytest.raises(ResampleError):
        bank.process(a, b"\x00")
    with pytest.raises(ResampleError):
        FrameResampler(16000, 16000)


def test_frame_resampler_callback_error_does_not_starve_other_streams() -> None:
    bank = FrameResampler(8000, 16000)
    a, b = bank.open(), bank.open()
    got: list[bytes] = []

    def boom(_: bytes) -> None:
        raise RuntimeError("sink failed")

    bank.submit(a, bytes(320), boom)
    bank.submit(b, bytes(320), got.append)
    with pytest.raises(RuntimeError):
        bank.run()
    assert len(got) == 1 and bank.pending == 0
