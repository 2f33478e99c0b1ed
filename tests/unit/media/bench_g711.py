"""Micro-benchmark for G.711 implementations (not collected by pytest).

Run: .venv/bin/python tests/unit/media/bench_g711.py
Prints microseconds per 20 ms frame (160 samples) for each implementation.
"""

from __future__ import annotations

import sys
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from media import g711

FRAME = 160


def _per_frame_us(fn: Callable[[], object], frames_per_call: int, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number / frames_per_call * 1e6


def main() -> None:
    rng = np.random.default_rng(1)
    pcm = (rng.standard_normal(FRAME) * 3000).astype("<i2")
    pcm_b = pcm.tobytes()
    codes_b = g711.ulaw_encode_numpy(pcm_b)
    rows: list[tuple[str, float, float]] = []

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            audioop = None  # type: ignore[assignment]
    if audioop is not None:
        rows.append(
            (
                "per-frame audioop",
                _per_frame_us(lambda: audioop.ulaw2lin(codes_b, 2), 1, 20000),
                _per_frame_us(lambda: audioop.lin2ulaw(pcm_b, 2), 1, 20000),
            )
        )
    rows.append(
        (
            "per-frame numpy table",
            _per_frame_us(lambda: g711.ulaw_decode_numpy(codes_b), 1, 20000),
            _per_frame_us(lambda: g711.ulaw_encode_numpy(pcm_b), 1, 20000),
        )
    )
    for n in (100, 200):
        codes_2d = np.frombuffer(codes_b * n, dtype=np.uint8).reshape(n, FRAME)
        pcm_2d = np.frombuffer(pcm_b * n, dtype=np.int16).reshape(n, FRAME)
        rows.append(
            (
                f"batched numpy, {n} frames (kernel)",
                _per_frame_us(lambda a=codes_2d: g711.ulaw_decode_batch(a), n, 500),  # type: ignore[misc]
                _per_frame_us(lambda a=pcm_2d: g711.ulaw_encode_batch(a), n, 500),  # type: ignore[misc]
            )
        )
        code_frames = [codes_b] * n
        pcm_frames = [pcm_b] * n

        def dec(frames: list[bytes] = code_frames, k: int = n) -> list[bytes]:
            out = g711.ulaw_decode_batch(np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(k, FRAME))
            return [row.tobytes() for row in out]

        def enc(frames: list[bytes] = pcm_frames, k: int = n) -> list[bytes]:
            out = g711.ulaw_encode_batch(np.frombuffer(b"".join(frames), dtype=np.int16).reshape(k, FRAME))
            return [row.tobytes() for row in out]

        rows.append(
            (
                f"batched numpy, {n} frames (bytes in/out)",
                _per_frame_us(dec, n, 500),
                _per_frame_us(enc, n, 500),
            )
        )

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, default backend: {g711.BACKEND}")
    print(f"{'implementation':45s} {'decode us/frame':>16s} {'encode us/frame':>16s}")
    for name, d, e in rows:
        print(f"{name:45s} {d:16.3f} {e:16.3f}")


if __name__ == "__main__":
    main()
