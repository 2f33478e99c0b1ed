"""The Twilio codec relies on media.g711 for mu-law; check what it needs from it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from media.g711 import ulaw_decode, ulaw_encode


def tone(freq: float, amplitude: float, samples: int, rate: int = 8000) -> np.ndarray:
    t = np.arange(samples) / rate
    return np.round(amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2")


def test_reference_values() -> None:
    assert ulaw_decode(b"\xff\x7f\x80\x00") == np.array([0, 0, 32124, -32124], dtype="<i2").tobytes()
    assert ulaw_encode(np.array([0, 32767, -32768], dtype="<i2").tobytes()) == b"\xff\x80\x00"


def test_every_code_survives_decode_encode() -> None:
    codes = bytes(range(256))
    back = ulaw_encode(ulaw_decode(codes))
    # 0x7f is "negative zero" and comes back as the positive zero 0xff.
    assert back == codes.replace(b"\x7f", b"\xff")


def test_monotonic() -> None:
    pcm = np.arange(-32768, 32768, dtype="<i2")
    levels = np.frombuffer(ulaw_decode(ulaw_encode(pcm.tobytes())), dtype="<i2").astype(np.int32)
    assert np.all(np.diff(levels) >= 0)


@pytest.mark.parametrize(("freq", "amplitude"), [(1000.0, 0.5), (440.0, 0.9), (1800.0, 0.05)])
def test_tone_round_trip_within_g711_error(freq: float, amplitude: float) -> None:
    x = tone(freq, amplitude, 8000)
    y = np.frombuffer(ulaw_decode(ulaw_encode(x.tobytes())), dtype="<i2")
    assert len(y) == len(x)
    err = np.abs(y.astype(np.int32) - x.astype(np.int32))
    # Each segment has 16 steps, so the error is at most ~1/32 of the magnitude
    # (plus the finest step near zero).
    assert np.all(err <= np.abs(x.astype(np.int32)) / 16 + 8)
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(err.astype(np.float64) ** 2))
    assert snr > 30


def test_lengths() -> None:
    # Odd-length PCM never reaches the encoder: the Twilio codec rejects it first.
    assert ulaw_decode(b"") == b""
    assert ulaw_encode(b"") == b""
    assert len(ulaw_decode(b"\x00" * 160)) == 320
