"""Loudness tests on G.711 payloads and PCM16 frames, cheap enough to run on every packet.

A marker (a short tone burst) is told from silence by its level: a payload is
"loud" when any of its samples is above LOUD_THRESHOLD (of 32767). For G.711 this is
one `bytes.translate` through a 256-entry table and a substring test.
"""

from __future__ import annotations

import math

import numpy as np

LOUD_THRESHOLD = 4000


def ulaw_to_linear(code: int) -> int:
    u = ~code & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return -magnitude if u & 0x80 else magnitude


def alaw_to_linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _table(decode: object, threshold: int) -> bytes:
    assert callable(decode)
    return bytes(1 if abs(decode(i)) > threshold else 0 for i in range(256))


ULAW_LOUD = _table(ulaw_to_linear, LOUD_THRESHOLD)
ALAW_LOUD = _table(alaw_to_linear, LOUD_THRESHOLD)


def g711_loud(payload: bytes, table: bytes = ULAW_LOUD) -> bool:
    return b"\x01" in payload.translate(table)


def pcm16_loud(frame: bytes, threshold: int = LOUD_THRESHOLD) -> bool:
    if len(frame) < 2:
        return False
    samples = np.frombuffer(frame, dtype="<i2", count=len(frame) // 2)
    return bool(int(samples.max()) > threshold or int(samples.min()) < -threshold)


def tone_frame(sample_rate: int, ms: int = 20, freq: float = 1000.0, amplitude: int = 16000) -> bytes:
    """PCM16 LE mono tone burst: the marker the load agent sends."""
    n = sample_rate * ms // 1000
    samples = [int(amplitude * math.sin(2 * math.pi * freq * i / sample_rate)) for i in range(n)]
    return np.asarray(samples, dtype="<i2").tobytes()
