"""Test audio: tones, WAV and raw G.711 files for the peers, RTP parsing, FFT checks.

PCM is mono int16 numpy arrays throughout. G.711 mu-law is implemented here with numpy
(the stdlib `audioop` is deprecated and gone in Python 3.13).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

PCM = npt.NDArray[np.int16]

_ULAW_BIAS = 0x84
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


# --------------------------------------------------------------------------- signals


def tone(freq: float | list[float], seconds: float, rate: int = 8000, amplitude: float = 0.5) -> PCM:
    """A sine tone (or the sum of several, sharing `amplitude`) as int16 PCM."""
    freqs = [freq] if isinstance(freq, int | float) else list(freq)
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    signal = np.zeros(n, dtype=np.float64)
    for f in freqs:
        signal += np.sin(2 * np.pi * f * t)
    signal *= amplitude / max(1, len(freqs))
    return np.asarray(np.clip(signal * 32767.0, -32768, 32767).astype(np.int16))


def silence(seconds: float, rate: int = 8000) -> PCM:
    return np.zeros(round(seconds * rate), dtype=np.int16)


def concat(*parts: PCM) -> PCM:
    return np.asarray(np.concatenate(parts).astype(np.int16))


# --------------------------------------------------------------------------- files


def write_wav(path: str | Path, pcm: PCM, rate: int = 8000) -> Path:
    """Mono 16-bit PCM WAV."""
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def read_wav(path: str | Path) -> tuple[PCM, int]:
    """(mono int16 PCM, sample rate) of a WAV file; multi-channel files are averaged."""
    try:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        return np.asarray(mono.astype(np.int16)), int(rate)
    except ImportError:
        pass
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit WAV supported without soundfile")
        channels = w.getnchannels()
        rate = w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        frames = frames.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return np.asarray(frames.astype(np.int16)), rate


def ulaw_encode(pcm: PCM) -> bytes:
    """G.711 mu-law encoding of int16 PCM (same codes as the reference encoder)."""
    v = np.asarray(pcm, dtype=np.int32) >> 2
    negative = v < 0
    v = np.minimum(np.where(negative, -v, v), 8159) + 0x21
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, v)
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((v >> np.minimum(segment + 1, 8)) & 0x0F))
    code = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    return bytes(code.astype(np.uint8).tobytes())


def ulaw_decode(data: bytes) -> PCM:
    """G.711 mu-law bytes to int16 PCM."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.asarray(np.where(sign != 0, -mag, mag).astype(np.int16))


def write_ulaw(path: str | Path, pcm: PCM) -> Path:
    """Raw headerless 8 kHz mu-law file, as SIPp's rtp_stream="file,loops,0" plays it."""
    path = Path(path)
    path.write_bytes(ulaw_encode(pcm))
    return path


# --------------------------------------------------------------------------- RTP


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(packet: bytes) -> RtpPacket | None:
    """Parse an RTP packet (RFC 3550); None when it is not RTP version 2."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(packet) < offset + 4:
            return None
        ext_len = struct.unpack("!H", packet[offset + 2:offset + 4])[0]
        offset += 4 + 4 * ext_len
    payload = packet[offset:]
    if b0 & 0x20 and payload:
        payload = payload[: len(payload) - payload[-1]]
    return RtpPacket(b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, payload)


def build_rtp(payload: bytes, *, sequence: int, timestamp: int, ssrc: int = 0x1234ABCD,
              payload_type: int = 0, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type,
                       sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


def decode_pcmu_stream(packets: list[RtpPacket]) -> PCM:
    """PCM of the PT 0 packets, ordered by sequence number (no gap filling)."""
    audio = sorted((p for p in packets if p.payload_type == 0), key=lambda p: p.sequence)
    return ulaw_decode(b"".join(p.payload for p in audio))


class RtpEndpoint:
    """A UDP socket on 127.0.0.1 that stands in for one end of an RTP stream in a test.

    It records every packet it receives (with its source address). With `reply_pcm`
    it answers each received packet with the next 20 ms PCMU frame of that audio, sent
    back to the packet's source (symmetric RTP), so the far end hears a known signal
    paced by its own stream. Use it as the media address of a caller SDP
    (selfcheck/uac_local_bye_rtp.xml takes it as -set rtp_port).
    """

    def __init__(self, port: int = 0, reply_pcm: PCM | None = None, payload_type: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.reply = ulaw_encode(reply_pcm) if reply_pcm is not None else None
        self.payload_type = payload_type
        self.received: list[tuple[RtpPacket, tuple[str, int], float]] = []
        self.sent = 0
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-{self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            pkt = parse_rtp(data)
            if pkt is None:
                continue
            with self._lock:
                self.received.append((pkt, (addr[0], int(addr[1])), time.monotonic()))
            if self.reply:
                self._send_frame(addr)

    def _send_frame(self, addr: tuple[str, int]) -> None:
        frame_bytes = 160
        count = max(1, len(self.reply or b"") // frame_bytes)
        i = self._seq % count
        payload = (self.reply or b"")[i * frame_bytes:(i + 1) * frame_bytes]
        self.send(addr, payload)

    def send(self, addr: tuple[str, int], payload: bytes, payload_type: int | None = None,
             marker: bool = False) -> None:
        """Send one RTP packet (sequence and 8 kHz timestamp advance per packet)."""
        pt = self.payload_type if payload_type is None else payload_type
        packet = build_rtp(payload, sequence=self._seq, timestamp=self._seq * 160, payload_type=pt, marker=marker)
        self._seq += 1
        self.sock.sendto(packet, addr)
        self.sent += 1

    def stream(self, addr: tuple[str, int], pcm: PCM, ptime_ms: int = 20) -> None:
        """Send `pcm` as PCMU to `addr` in real time (blocks for its duration)."""
        data = ulaw_encode(pcm)
        step = 8 * ptime_ms
        start = time.monotonic()
        for n, offset in enumerate(range(0, len(data), step)):
            self.send(addr, data[offset:offset + step], payload_type=0)
            delay = start + (n + 1) * ptime_ms / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def packets(self) -> list[RtpPacket]:
        with self._lock:
            return [p for p, _, _ in self.received]

    def sources(self) -> set[tuple[str, int]]:
        with self._lock:
            return {a for _, a, _ in self.received}

    def payload_types(self) -> Counter[int]:
        return Counter(p.payload_type for p in self.packets())

    def pcm(self) -> PCM:
        """Decoded PCMU audio received so far."""
        return decode_pcmu_stream(self.packets())

    def wait_packets(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def __enter__(self) -> RtpEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- analysis


def _spectrum(pcm: PCM, rate: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    x = np.asarray(pcm, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0), np.zeros(0)
    x = x - x.mean()
    window = np.hanning(x.size) if x.size > 1 else np.ones(1)
    power = np.abs(np.fft.rfft(x * window)) ** 2
    freqs = np.fft.rfftfreq(x.size, d=1.0 / rate)
    return np.asarray(freqs, dtype=np.float64), np.asarray(power, dtype=np.float64)


def dominant_frequencies(pcm: PCM, rate: int, count: int = 3, min_hz: float = 50.0,
                         separation_hz: float = 40.0) -> list[float]:
    """The `count` strongest spectral peaks (Hz), strongest first, at least `separation_hz` apart."""
    freqs, power = _spectrum(pcm, rate)
    if power.size == 0:
        return []
    mask = freqs >= min_hz
    freqs, power = freqs[mask], power[mask]
    found: list[float] = []
    for idx in np.argsort(power)[::-1]:
        f = float(freqs[idx])
        if power[idx] <= 0:
            break
        if all(abs(f - g) >= separation_hz for g in found):
            found.append(f)
            if len(found) == count:
                break
    return found


def tone_power(pcm: PCM, rate: int, freq: float, bandwidth: float = 25.0) -> float:
    """Share (0..1) of the signal's power that lies within freq +/- bandwidth Hz."""
    freqs, power = _spectrum(pcm, rate)
    total = float(power.sum())
    if total <= 0:
        return 0.0
    band = (freqs >= freq - bandwidth) & (freqs <= freq + bandwidth)
    return float(power[band].sum()) / total


def rms_dbfs(pcm: PCM) -> float:
    """RMS level in dB relative to int16 full scale (-inf for digital silence)."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(x * x)))
    return 20 * float(np.log10(rms / 32768.0)) if rms > 0 else float("-inf")


__all__ = [
    "PCM",
    "RtpEndpoint",
    "RtpPacket",
    "build_rtp",
    "concat",
    "decode_pcmu_stream",
    "dominant_frequencies",
    "parse_rtp",
    "read_wav",
    "rms_dbfs",
    "silence",
    "tone",
    "tone_power",
    "ulaw_decode",
    "ulaw_encode",
    "write_ulaw",
    "write_wav",
]
