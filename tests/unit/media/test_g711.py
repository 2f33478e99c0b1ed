from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from media import g711
from media.errors import CodecError
from media.rtp import RtpPacket
from tests.unit.media.pcap_util import SIPP_PCAP_DIR, read_udp

REPO = Path(__file__).resolve().parents[3]
ALL_PCM = np.arange(-32768, 32768, dtype="<i2")
ALL_PCM_BYTES = ALL_PCM.tobytes()
ALL_CODES = bytes(range(256))


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None


# ITU-T G.191 (STL) reference algorithms, written out scalar by scalar.


def stl_ulaw_decode(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code & 0xFF
    exponent = (mantissa >> 4) & 0x07
    segment = exponent + 1
    mantissa &= 0x0F
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def stl_alaw_decode(code: int) -> int:
    ix = code ^ 0x55
    ix &= 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def stl_alaw_encode(lin: int) -> int:
    ix = (~lin) >> 4 if lin < 0 else lin >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if lin >= 0:
        ix |= 0x80
    return ix ^ 0x55


def stl_ulaw_encode(lin: int, negative_magnitude: str = "ones_complement") -> int:
    if lin < 0:
        mag = (~lin) >> 2 if negative_magnitude == "ones_complement" else -(lin >> 2)
    else:
        mag = lin >> 2
    absno = min(mag + 33, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i:
        segno += 1
        i >>= 1
    high = 8 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    out = (high << 4) | low
    if lin >= 0:
        out |= 0x80
    return out


def test_reference_values_from_the_standard() -> None:
    u = np.frombuffer(g711.ulaw_decode_numpy(bytes([0xFF, 0x80, 0x00, 0x7F])), "<i2")
    assert u.tolist() == [0, 32124, -32124, 0]
    a = np.frombuffer(g711.alaw_decode_numpy(bytes([0xD5, 0x55, 0xAA, 0x2A])), "<i2")
    assert a.tolist() == [8, -8, 32256, -32256]
    assert g711.ulaw_encode_numpy(np.array([0, 32767, -32768], "<i2").tobytes()) == b"\xff\x80\x00"
    assert g711.alaw_encode_numpy(np.array([0, -1, 32767, -32768], "<i2").tobytes()) == b"\xd5\x55\xaa\x2a"


def test_decode_tables_match_g191_for_all_codes() -> None:
    assert g711.ULAW_DECODE.tolist() == [stl_ulaw_decode(c) for c in range(256)]
    assert g711.ALAW_DECODE.tolist() == [stl_alaw_decode(c) for c in range(256)]


def test_alaw_encode_table_matches_g191_for_all_inputs() -> None:
    expected = [stl_alaw_encode(x) for x in range(-32768, 32768)]
    assert g711.alaw_encode_batch(ALL_PCM.astype(np.int16)).tolist() == expected


def test_ulaw_encode_table_matches_g191_up_to_negative_rounding() -> None:
    got = g711.ulaw_encode_batch(ALL_PCM.astype(np.int16)).tolist()
    xs = range(-32768, 32768)
    assert got == [stl_ulaw_encode(x, "negated") for x in xs]
    ones = [stl_ulaw_encode(x) for x in xs]
    diffs = [i for i in range(65536) if got[i] != ones[i]]
    assert len(diffs) == 508
    for i in diffs:
        x = i - 32768
        assert x < 0
        # The two conventions disagree only on a decision boundary: adjacent codes.
        assert abs(int(g711.ULAW_DECODE[got[i]]) - int(g711.ULAW_DECODE[ones[i]])) <= 1024
        assert abs((got[i] & 0x7F) - (ones[i] & 0x7F)) == 1


def test_tables_equal_audioop_or_numpy_is_the_backend() -> None:
    audioop = _audioop()
    if audioop is None:
        assert g711.BACKEND == "numpy"
        return
    assert g711.ulaw_decode_numpy(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode_numpy(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)
    assert g711.ulaw_encode_numpy(ALL_PCM_BYTES) == audioop.lin2ulaw(ALL_PCM_BYTES, 2)
    assert g711.alaw_encode_numpy(ALL_PCM_BYTES) == audioop.lin2alaw(ALL_PCM_BYTES, 2)
    assert g711.BACKEND == "audioop"


def test_per_frame_api_equals_numpy_api() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        pcm = rng.integers(-32768, 32768, 160, dtype=np.int64).astype("<i2").tobytes()
        codes = rng.integers(0, 256, 160, dtype=np.int64).astype(np.uint8).tobytes()
        assert g711.ulaw_encode(pcm) == g711.ulaw_encode_numpy(pcm)
        assert g711.alaw_encode(pcm) == g711.alaw_encode_numpy(pcm)
        assert g711.ulaw_decode(codes) == g711.ulaw_decode_numpy(codes)
        assert g711.alaw_decode(codes) == g711.alaw_decode_numpy(codes)
    for fn in (g711.ulaw_decode, g711.alaw_decode, g711.ulaw_encode, g711.alaw_encode):
        assert fn(b"") == b""
    assert g711.ulaw_decode(bytearray(b"\xff")) == b"\x00\x00"
    assert g711.alaw_encode(memoryview(b"\x00\x00")) == b"\xd5"


def test_roundtrip_codes() -> None:
    for law_dec, law_enc, exceptions in (
        (g711.ulaw_decode, g711.ulaw_encode, {0x7F: 0xFF}),  # negative zero re-encodes as +0
        (g711.alaw_decode, g711.alaw_encode, {}),
    ):
        back = law_enc(law_dec(ALL_CODES))
        assert [b for b in back] == [exceptions.get(c, c) for c in range(256)]


def test_quantisation_error_is_bounded_by_half_a_step() -> None:
    for dec, enc in ((g711.ULAW_DECODE, g711.ulaw_encode_batch), (g711.ALAW_DECODE, g711.alaw_encode_batch)):
        x = ALL_PCM.astype(np.int64)
        y = dec[enc(ALL_PCM.astype(np.int16))].astype(np.int64)
        err = np.abs(y - x)
        mag = np.abs(x)
        # Step size is at most 1/16 of the magnitude (+ segment 0/1 floor), clipping aside.
        bound = np.maximum(mag // 16, 16) + 8
        inside = mag < 32000
        assert np.all(err[inside] <= bound[inside])


def test_odd_length_pcm_is_a_codec_error() -> None:
    for fn in (g711.ulaw_encode, g711.alaw_encode, g711.ulaw_encode_numpy, g711.alaw_encode_numpy):
        with pytest.raises(CodecError):
            fn(b"\x00\x01\x02")


def test_batched_api_matches_per_frame() -> None:
    rng = np.random.default_rng(3)
    pcm = rng.integers(-32768, 32768, (100, 160), dtype=np.int64).astype(np.int16)
    codes = g711.ulaw_encode_batch(pcm)
    assert codes.shape == (100, 160) and codes.dtype == np.uint8
    for row_pcm, row_codes in zip(pcm, codes, strict=True):
        assert row_codes.tobytes() == g711.ulaw_encode(row_pcm.astype("<i2").tobytes())
    dec = g711.ulaw_decode_batch(codes)
    assert dec.shape == (100, 160) and dec.dtype == np.int16
    assert dec[5].astype("<i2").tobytes() == g711.ulaw_decode(codes[5].tobytes())
    a = g711.alaw_encode_batch(pcm[:, ::2])  # non-contiguous input works too
    assert np.array_equal(g711.alaw_decode_batch(a), g711.ALAW_DECODE[a])
    with pytest.raises(CodecError):
        g711.ulaw_encode_batch(pcm.astype(np.int32))
    with pytest.raises(CodecError):
        g711.alaw_decode_batch(codes.astype(np.int16))


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_DECODE[0] = 1


def test_decode_real_alaw_capture() -> None:
    payloads = [RtpPacket.parse(d.payload).payload for d in read_udp(SIPP_PCAP_DIR / "g711a.pcap")]
    pcm = b"".join(g711.alaw_decode(p) for p in payloads)
    assert pcm == g711.alaw_decode_numpy(b"".join(payloads))
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    assert len(samples) == 236 * 240
    rms = np.sqrt(np.mean(samples**2))
    assert 100 < rms < 20000  # real speech/tone, not silence or garbage
    assert g711.alaw_encode(pcm) == b"".join(payloads)  # A-law codes survive a decode/encode cycle


def _run_isolated(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_emits_no_deprecation_warning() -> None:
    assert _run_isolated("import media.g711 as g; print(g.BACKEND)") in ("audioop", "numpy")


def test_numpy_fallback_when_audioop_is_missing() -> None:
    code = (
        "import sys; sys.modules['audioop'] = None\n"
        "import media.g711 as g\n"
        "assert g.BACKEND == 'numpy'\n"
        "assert g.ulaw_decode(bytes([0xff, 0x80])) == bytes.fromhex('00007c7d')\n"
        "assert g.alaw_encode(bytes.fromhex('0800')) == bytes([0xd5])\n"
        "print('ok')\n"
    )
    assert _run_isolated(code) == "ok"
