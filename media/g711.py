"""G.711 mu-law / A-law codecs between PCM16 and 8-bit codes. Sans-I/O.

PCM is signed 16-bit little-endian (``'<i2'``), one channel.

Per-frame API (bytes in, bytes out; any bytes-like input is accepted)
---------------------------------------------------------------------
``ulaw_decode(codes) -> bytes``   ``ulaw_encode(pcm) -> bytes``
``alaw_decode(codes) -> bytes``   ``alaw_encode(pcm) -> bytes``
    Encoders raise :class:`~media.errors.CodecError` for an odd number of bytes.
    ``BACKEND`` names the implementation behind them: ``"audioop"`` where the module
    exists (CPython <= 3.12, little-endian) because it measured fastest per 20 ms
    frame, otherwise ``"numpy"``. The numpy implementations are always available
    as ``ulaw_decode_numpy`` etc. and produce identical output.

Batched API (numpy arrays of any shape, typically frames x samples)
-------------------------------------------------------------------
``ulaw_decode_batch(codes: NDArray[uint8]) -> NDArray[int16]``
``ulaw_encode_batch(pcm: NDArray[int16]) -> NDArray[uint8]``
``alaw_decode_batch`` / ``alaw_encode_batch`` likewise.

Tables
------
``ULAW_DECODE`` / ``ALAW_DECODE``: 256-entry ``'<i2'`` arrays; ``ULAW_ENCODE`` /
``ALAW_ENCODE``: 65536-entry uint8 arrays indexed by the uint16 view of the sample.
Decoding follows ITU-T G.711 exactly (mu-law 0xFF -> 0, 0x80 -> 32124, 0x00 -> -32124;
A-law 0xD5 -> 8, 0x55 -> -8, 0xAA -> 32256, 0x2A -> -32256). Encoding truncates to
14 bits (mu-law) / 13 bits (A-law) like CPython's ``audioop``, so both backends are
bit-identical. A-law also matches the ITU-T G.191 reference for every input; for
mu-law, G.191 maps a negative ``x`` via the one's complement (``~x``) while
``audioop`` negates ``x >> 2``, so 508 negative inputs lying exactly on a decision
boundary get the adjacent code (one quantisation step apart).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from media.errors import CodecError

__all__ = [
    "ALAW_DECODE",
    "ALAW_ENCODE",
    "BACKEND",
    "ULAW_DECODE",
    "ULAW_ENCODE",
    "alaw_decode",
    "alaw_decode_batch",
    "alaw_decode_numpy",
    "alaw_encode",
    "alaw_encode_batch",
    "alaw_encode_numpy",
    "ulaw_decode",
    "ulaw_decode_batch",
    "ulaw_decode_numpy",
    "ulaw_encode",
    "ulaw_encode_batch",
    "ulaw_encode_numpy",
]

Buffer = bytes | bytearray | memoryview


# --------------------------------------------------------------------------- tables


def _build_ulaw_decode() -> NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype("<i2")


def _build_alaw_decode() -> NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype("<i2")


def _segment(mag: NDArray[np.int32], ends: tuple[int, ...]) -> NDArray[np.int32]:
    # Index of the first segment end >= mag (len(ends) when above all of them).
    return np.searchsorted(np.asarray(ends, dtype=np.int32), mag, side="left").astype(np.int32)


def _build_ulaw_encode() -> NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2
    neg = x < 0
    mask = np.where(neg, 0x7F, 0xFF)
    mag = np.minimum(np.where(neg, -x, x), 8159) + 0x21
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return _by_uint16_index(code ^ mask)


def _build_alaw_encode() -> NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 3
    neg = x < 0
    mask = np.where(neg, 0x55, 0xD5)
    mag = np.where(neg, -x - 1, x)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    segc = np.minimum(seg, 7)
    quant = np.where(segc < 2, mag >> 1, mag >> segc) & 0x0F
    code = np.where(seg >= 8, 0x7F, (segc << 4) | quant)
    return _by_uint16_index(code ^ mask)


def _by_uint16_index(codes_from_min: NDArray[Any]) -> NDArray[np.uint8]:
    # codes_from_min[i] is the code for sample i - 32768; reorder so that the
    # table is indexed by the sample's uint16 bit pattern.
    return np.roll(codes_from_min.astype(np.uint8), -32768)


ULAW_DECODE: NDArray[np.int16] = _build_ulaw_decode()
ALAW_DECODE: NDArray[np.int16] = _build_alaw_decode()
ULAW_ENCODE: NDArray[np.uint8] = _build_ulaw_encode()
ALAW_ENCODE: NDArray[np.uint8] = _build_alaw_encode()
for _t in (ULAW_DECODE, ALAW_DECODE, ULAW_ENCODE, ALAW_ENCODE):
    _t.flags.writeable = False


# --------------------------------------------------------------------------- numpy


def _pcm_view(pcm: Buffer) -> NDArray[np.uint16]:
    if len(pcm) % 2:
        raise CodecError(f"PCM16 input has an odd number of bytes ({len(pcm)})")
    return np.frombuffer(pcm, dtype="<u2")


def ulaw_decode_numpy(codes: Buffer) -> bytes:
    return ULAW_DECODE.take(np.frombuffer(codes, dtype=np.uint8)).tobytes()


def alaw_decode_numpy(codes: Buffer) -> bytes:
    return ALAW_DECODE.take(np.frombuffer(codes, dtype=np.uint8)).tobytes()


def ulaw_encode_numpy(pcm: Buffer) -> bytes:
    return ULAW_ENCODE.take(_pcm_view(pcm)).tobytes()


def alaw_encode_numpy(pcm: Buffer) -> bytes:
    return ALAW_ENCODE.take(_pcm_view(pcm)).tobytes()


def ulaw_decode_batch(codes: NDArray[np.uint8]) -> NDArray[np.int16]:
    """Decode an array of mu-law codes (any shape) to int16 of the same shape."""
    if codes.dtype != np.uint8:
        raise CodecError(f"expected uint8 codes, got {codes.dtype}")
    return ULAW_DECODE.take(codes).astype(np.int16, copy=False)


def alaw_decode_batch(codes: NDArray[np.uint8]) -> NDArray[np.int16]:
    """Decode an array of A-law codes (any shape) to int16 of the same shape."""
    if codes.dtype != np.uint8:
        raise CodecError(f"expected uint8 codes, got {codes.dtype}")
    return ALAW_DECODE.take(codes).astype(np.int16, copy=False)


def ulaw_encode_batch(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """Encode an int16 array (any shape) to mu-law codes of the same shape."""
    if pcm.dtype != np.int16:
        raise CodecError(f"expected int16 samples, got {pcm.dtype}")
    return ULAW_ENCODE.take(pcm.view(np.uint16))


def alaw_encode_batch(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """Encode an int16 array (any shape) to A-law codes of the same shape."""
    if pcm.dtype != np.int16:
        raise CodecError(f"expected int16 samples, got {pcm.dtype}")
    return ALAW_ENCODE.take(pcm.view(np.uint16))


# --------------------------------------------------------------------------- audioop


class _AudioopLike(Protocol):
    def ulaw2lin(self, fragment: Buffer, width: int, /) -> bytes: ...
    def lin2ulaw(self, fragment: Buffer, width: int, /) -> bytes: ...
    def alaw2lin(self, fragment: Buffer, width: int, /) -> bytes: ...
    def lin2alaw(self, fragment: Buffer, width: int, /) -> bytes: ...


def _load_audioop() -> _AudioopLike | None:
    if sys.byteorder != "little":  # audioop works in native byte order
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return cast(_AudioopLike, importlib.import_module("audioop"))
        except ImportError:
            return None


_audioop = _load_audioop()

if _audioop is not None:
    _ao = _audioop
    BACKEND = "audioop"

    def ulaw_decode(codes: Buffer) -> bytes:
        """mu-law codes -> PCM16LE."""
        return _ao.ulaw2lin(codes, 2)

    def alaw_decode(codes: Buffer) -> bytes:
        """A-law codes -> PCM16LE."""
        return _ao.alaw2lin(codes, 2)

    def ulaw_encode(pcm: Buffer) -> bytes:
        """PCM16LE -> mu-law codes."""
        if len(pcm) % 2:
            raise CodecError(f"PCM16 input has an odd number of bytes ({len(pcm)})")
        return _ao.lin2ulaw(pcm, 2)

    def alaw_encode(pcm: Buffer) -> bytes:
        """PCM16LE -> A-law codes."""
        if len(pcm) % 2:
            raise CodecError(f"PCM16 input has an odd number of bytes ({len(pcm)})")
        return _ao.lin2alaw(pcm, 2)

else:
    BACKEND = "numpy"
    ulaw_decode = ulaw_decode_numpy
    alaw_decode = alaw_decode_numpy
    ulaw_encode = ulaw_encode_numpy
    alaw_encode = alaw_encode_numpy
