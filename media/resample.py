"""PCM16 resampling between the 8 kHz telephony side and an agent's rate. Sans-I/O.

Both classes use one windowed-sinc (Kaiser) low-pass, designed at the common
multiple of the two rates: cut-off at 95 % of the lower Nyquist frequency,
about 70 dB stopband, linear phase. Its delay is short (3 ms for 8 <-> 16 kHz,
against 15-30 ms for libsoxr's streaming mode) and constant, so chunk
boundaries are seamless and no tail has to be flushed out.

``FrameResampler(from_rate, to_rate, frame_ms=20)``
    Many streams, one 20 ms frame each per media tick, in one matrix product:
    each stream holds a slot (``open()`` / ``close(slot)`` / ``reset(slot)``);
    ``submit(slot, pcm, done)`` queues a frame and ``run()`` resamples every queued
    frame at once and calls ``done(out_pcm)`` per frame, in submission order. A
    slot submitted twice before ``run()`` is handled in two rounds (its second
    frame continues from its first). ``process(slot, pcm)`` does one frame now.
    Per frame this costs a few microseconds instead of a filter call per stream.

``FrameResamplers()``
    One FrameResampler per rate pair (``get(from_rate, to_rate)``), and ``run()``
    for all of them: what the media clock runs once per tick phase.

``Resampler(from_rate, to_rate)``
    One stream, chunks of any length. ``process(pcm: bytes) -> bytes`` returns
    exactly ``floor(total_in * to_rate / from_rate) - total_out`` samples, so 20 ms
    in gives 20 ms out. ``process_array`` is the same for int16 arrays,
    ``reset()`` starts a new, unrelated signal, ``latency_samples`` is the filter
    delay in output samples.

Rates: any two of ``SUPPORTED_RATES`` (equal rates pass audio through).
Errors: :class:`~media.errors.ResampleError` for unsupported rates or odd-length PCM.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from media.errors import ResampleError

__all__ = ["SUPPORTED_RATES", "FrameResampler", "FrameResamplers", "Resampler"]

SUPPORTED_RATES = frozenset({8000, 12000, 16000, 24000, 32000, 48000})

# The per-tick matrix products are small: BLAS worker threads would only spin on the
# second core (measured: 60 % of it) and slow the event loop thread down.
threadpool_limits(limits=1, user_api="blas")

_TAPS_AT_16K = 96  # filter length at a 16 kHz design rate; scaled with the rate
_KAISER_BETA = 7.0  # about 70 dB stopband
_CUTOFF = 0.95  # of the lower Nyquist frequency


def _check(from_rate: int, to_rate: int) -> None:
    for rate in (from_rate, to_rate):
        if rate not in SUPPORTED_RATES:
            raise ResampleError(f"unsupported sample rate {rate}; use one of {sorted(SUPPORTED_RATES)}")


@cache
def _design(from_rate: int, to_rate: int) -> tuple[int, int, NDArray[np.float64]]:
    """(up, down, taps): upsample by ``up``, filter at ``from_rate * up``, keep every ``down``-th."""
    g = math.gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    fs = from_rate * up
    n = max(16, round(_TAPS_AT_16K * fs / 16000))
    fc = _CUTOFF * min(from_rate, to_rate) / 2 / fs  # cycles per sample at fs
    t = np.arange(n) - (n - 1) / 2
    taps = 2 * fc * np.sinc(2 * fc * t) * np.kaiser(n, _KAISER_BETA)
    taps *= up / taps.sum()  # unity gain after zero-stuffing by `up`
    taps.setflags(write=False)
    return up, down, taps


def _to_pcm(y: NDArray[np.floating]) -> NDArray[np.int16]:
    np.rint(y, out=y)
    np.clip(y, -32768, 32767, out=y)
    return y.astype("<i2")


class FrameResampler:
    """Fixed-size frames of many streams, resampled together; see the module docstring."""

    __slots__ = (
        "_block_in",
        "_callbacks",
        "_frames",
        "_free",
        "_hist",
        "_matrix",
        "_queued",
        "_slots",
        "_state",
        "_windows",
        "delay_ms",
        "from_rate",
        "in_bytes",
        "in_samples",
        "out_samples",
        "to_rate",
    )

    def __init__(self, from_rate: int, to_rate: int, frame_ms: int = 20) -> None:
        _check(from_rate, to_rate)
        if from_rate == to_rate:
            raise ResampleError("FrameResampler needs two different rates")
        up, down, taps = _design(from_rate, to_rate)
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.in_samples = from_rate * frame_ms // 1000
        self.out_samples = to_rate * frame_ms // 1000
        self.in_bytes = 2 * self.in_samples
        n = len(taps)
        hist = -(-(n - 1) // up)  # input samples of the previous frames the filter reaches back to
        # The frame is cut in 2.5 ms blocks that all start on the same filter phase, so one
        # small matrix serves every block: row r holds input sample r - hist (relative to the
        # block), column j output sample j: y[j] = sum_i x[i] * taps[j*down - i*up]. Blocks
        # keep the product close to the filter's real work (a whole-frame matrix is mostly zeros).
        blocks = 8 if self.in_samples % 8 == 0 and (self.in_samples // 8 * up) % down == 0 else 1
        self._block_in = self.in_samples // blocks
        block_out = self.out_samples // blocks
        i = np.arange(hist + self._block_in)[:, None] - hist
        k = np.arange(block_out)[None, :] * down - i * up
        inside = (k >= 0) & (k < n)
        self._matrix = np.where(inside, taps[np.clip(k, 0, n - 1)], 0.0).astype(np.float32)
        self._hist = hist
        self.delay_ms = (n - 1) / 2 / (from_rate * up) * 1000.0
        blocks_in = np.arange(self.in_samples // self._block_in)[:, None] * self._block_in
        self._windows = blocks_in + np.arange(hist + self._block_in)[None, :]
        # Per slot, the last `hist` input samples of its stream.
        self._state = np.zeros((0, hist), dtype=np.float32)
        self._free: list[int] = []
        self._slots: list[int] = []
        self._frames: list[bytes] = []
        self._callbacks: list[Callable[[bytes], None]] = []
        self._queued: set[int] = set()

    # ------------------------------------------------------------------ slots

    def open(self) -> int:
        if not self._free:
            old = len(self._state)
            grown = np.zeros((max(8, 2 * old), self._state.shape[1]), dtype=np.float32)
            grown[:old] = self._state
            self._state = grown
            self._free = list(range(len(grown) - 1, old - 1, -1))
        slot = self._free.pop()
        self._state[slot] = 0.0
        return slot

    def close(self, slot: int) -> None:
        """Give the slot back; frames it still has queued are dropped."""
        if slot in self._queued:
            keep = [
                item
                for item in zip(self._slots, self._frames, self._callbacks, strict=True)
                if item[0] != slot
            ]
            self._slots = [s for s, _, _ in keep]
            self._frames = [f for _, f, _ in keep]
            self._callbacks = [cb for _, _, cb in keep]
            self._queued.discard(slot)
        self._free.append(slot)

    def reset(self, slot: int) -> None:
        """Forget the stream's past (a new, unrelated signal)."""
        self._state[slot] = 0.0

    @property
    def pending(self) -> int:
        return len(self._slots)

    # ------------------------------------------------------------------ frames

    def _fit(self, pcm: bytes) -> bytes:
        """The frame cut or zero-padded to ``in_bytes``."""
        n = len(pcm)
        if n == self.in_bytes:
            return pcm
        if n % 2:
            raise ResampleError(f"PCM16 input has an odd number of bytes ({n})")
        return bytes(pcm[: self.in_bytes]) + bytes(max(0, self.in_bytes - n))

    def submit(self, slot: int, pcm: bytes, done: Callable[[bytes], None]) -> None:
        """Queue one frame (cut or zero-padded to the frame size) for the next run()."""
        frame = self._fit(pcm)
        if slot in self._queued:
            self.run()  # a second frame of one stream continues from its first
        self._slots.append(slot)
        self._frames.append(frame)
        self._callbacks.append(done)
        self._queued.add(slot)

    def run(self) -> int:
        """Resample every queued frame; returns how many. A raising callback does not stop the others."""
        slots, frames, callbacks = self._slots, self._frames, self._callbacks
        if not slots:
            return 0
        self._slots, self._frames, self._callbacks = [], [], []
        self._queued.clear()
        # Per tick, not per frame: one join, one conversion, one gather and one product.
        n = len(slots)
        hist = self._hist
        rows = np.fromiter(slots, dtype=np.intp, count=n)
        x = np.empty((n, hist + self.in_samples), dtype=np.float32)
        x[:, :hist] = self._state[rows]
        x[:, hist:] = np.frombuffer(b"".join(frames), dtype="<i2").reshape(n, self.in_samples)
        self._state[rows] = x[:, -hist:]
        out = self._filter(x).tobytes()
        size = 2 * self.out_samples
        error: Exception | None = None
        for i, done in enumerate(callbacks):
            try:
                done(out[i * size : (i + 1) * size])
            except Exception as exc:  # reported after every stream got its frame
                error = error or exc
        if error is not None:
            raise error
        return n

    def process(self, slot: int, pcm: bytes) -> bytes:
        """One frame of one stream, now."""
        if slot in self._queued:
            self.run()
        hist = self._hist
        x = np.empty((1, hist + self.in_samples), dtype=np.float32)
        x[0, :hist] = self._state[slot]
        x[0, hist:] = np.frombuffer(self._fit(pcm), dtype="<i2")
        self._state[slot] = x[0, -hist:]
        return self._filter(x).tobytes()

    def _filter(self, x: NDArray[np.float32]) -> NDArray[np.int16]:
        """Rows of (history + frame) -> rows of output frames."""
        windows = x[:, self._windows]  # (rows, blocks, history + block): one gather
        y = windows.reshape(-1, windows.shape[-1]) @ self._matrix
        return _to_pcm(y.reshape(len(x), self.out_samples))


class FrameResamplers:
    """The FrameResampler of each rate pair, shared by all calls of one media clock."""

    __slots__ = ("_by_pair",)

    def __init__(self) -> None:
        self._by_pair: dict[tuple[int, int], FrameResampler] = {}

    def get(self, from_rate: int, to_rate: int) -> FrameResampler:
        key = (from_rate, to_rate)
        bank = self._by_pair.get(key)
        if bank is None:
            bank = self._by_pair[key] = FrameResampler(from_rate, to_rate)
        return bank

    def run(self) -> int:
        """Run every rate pair's queued frames (each pair runs even if another's callback raised)."""
        done = 0
        error: Exception | None = None
        for bank in self._by_pair.values():
            try:
                done += bank.run()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
        return done


class Resampler:
    """One stream, chunks of any length; see the module docstring."""

    __slots__ = (
        "_buf",
        "_buf_start",
        "_down",
        "_in_total",
        "_out_total",
        "_phases",
        "_up",
        "from_rate",
        "latency_samples",
        "to_rate",
    )

    def __init__(self, from_rate: int, to_rate: int) -> None:
        _check(from_rate, to_rate)
        self.from_rate = from_rate
        self.to_rate = to_rate
        up, down, taps = _design(from_rate, to_rate)
        self._up, self._down = up, down
        # Polyphase table: phase p uses taps[p], taps[p + up], ... on x[u//up], x[u//up - 1], ...
        per_phase = -(-len(taps) // up)
        padded = np.zeros(per_phase * up)
        padded[: len(taps)] = taps
        self._phases = padded.reshape(per_phase, up).T.copy()  # (up, per_phase)
        self.latency_samples = 0 if from_rate == to_rate else round((len(taps) - 1) / (2 * down))
        self._buf = np.zeros(0)
        self._buf_start = 0
        self._in_total = 0
        self._out_total = 0
        self.reset()

    def reset(self) -> None:
        """Drop all filter state."""
        taps_back = self._phases.shape[1]
        self._buf = np.zeros(taps_back)  # zeros before the first sample
        self._buf_start = -taps_back
        self._in_total = 0
        self._out_total = 0

    def process_array(self, x: NDArray[np.int16]) -> NDArray[np.int16]:
        if x.dtype != np.int16 or x.ndim != 1:
            raise ResampleError("expected a 1-D int16 array")
        if self.from_rate == self.to_rate:
            return x.copy()
        up, down = self._up, self._down
        self._buf = np.concatenate((self._buf, x.astype(np.float64)))
        self._in_total += len(x)
        want = self._in_total * up // down - self._out_total
        if want <= 0:
            return np.zeros(0, dtype=np.int16)
        u = (self._out_total + np.arange(want)) * down  # positions in the upsampled stream
        base = u // up - self._buf_start  # newest input sample each output uses, in _buf
        taps_back = self._phases.shape[1]
        idx = base[:, None] - np.arange(taps_back)[None, :]
        y = np.einsum("ij,ij->i", self._buf[idx], self._phases[u % up])
        self._out_total += want
        # Keep what the next outputs can still reach.
        first_needed = (self._out_total * down) // up - taps_back + 1
        drop = max(0, first_needed - self._buf_start)
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return _to_pcm(y)

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        if len(pcm) % 2:
            raise ResampleError(f"PCM16 input has an odd number of bytes ({len(pcm)})")
        x = np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)
        return self.process_array(x).astype("<i2", copy=False).tobytes()
