"""Helpers for the media component tests (no tests here): loopback peers, tones, sessions."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from media.negotiated import MediaDirection, NegotiatedMedia
from media.rtp import build_packet, parse_header_fast, payload_end
from media.session import FRAME_BYTES, SAMPLES_PER_FRAME, MediaConfig, MediaPortBusy, MediaSession

LOOPBACK = "127.0.0.1"
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}


def negotiated(
    remote_port: int,
    *,
    codec: str = "PCMU",
    remote_address: str = LOOPBACK,
    telephone_event_pt: int | None = 101,
    direction: MediaDirection = MediaDirection.SENDRECV,
    remote_hold: bool = False,
    remote_rtcp_port: int | None = None,
) -> NegotiatedMedia:
    pt = PAYLOAD_TYPES[codec]
    return NegotiatedMedia(
        remote_address=remote_address,
        remote_port=remote_port,
        remote_rtcp_port=remote_port + 1 if remote_rtcp_port is None else remote_rtcp_port,
        rtcp_mux=False,
        codec=codec,
        payload_type=pt,
        local_payload_type=pt,
        clock_rate=8000,
        channels=1,
        telephone_event_pt=telephone_event_pt,
        local_telephone_event_pt=telephone_event_pt,
        ptime=20,
        maxptime=None,
        direction=direction,
        remote_hold=remote_hold,
        rejected=False,
        media_index=0,
    )


async def open_session(
    config: MediaConfig,
    *,
    on_dtmf: Callable[[str, int], None] | None = None,
    on_media_timeout: Callable[[], None] | None = None,
    call_id: str = "call",
    clock: Callable[[], float] = time.monotonic,
) -> MediaSession:
    """Open a session on a free even port pair (retrying on MediaPortBusy), on ``clock``."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 60000, 2)
        session = MediaSession(
            call_id,
            port,
            config,
            on_dtmf=on_dtmf or (lambda digit, ms: None),
            on_media_timeout=on_media_timeout or (lambda: None),
            clock=clock,
        )
        try:
            await session.open()
        except MediaPortBusy:
            continue
        return session
    raise RuntimeError("no free port pair found")


class ToneSource:
    """PlayoutSource of a continuous sine (phase carried across frames)."""

    def __init__(self, freq: float, amplitude: float = 8000.0) -> None:
        self.freq = freq
        self.amplitude = amplitude
        self._n = 0
        self.frames = 0

    def next_frame(self) -> bytes | None:
        t = (self._n + np.arange(SAMPLES_PER_FRAME)) / 8000.0
        self._n += SAMPLES_PER_FRAME
        self.frames += 1
        return (np.sin(2 * math.pi * self.freq * t) * self.amplitude).astype("<i2").tobytes()


class Collector:
    """CallerAudioSink keeping every frame."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def on_caller_audio(self, pcm: bytes) -> None:
        assert len(pcm) == FRAME_BYTES
        self.frames.append(pcm)

    def samples(self, last_frames: int) -> np.ndarray[Any, np.dtype[np.int16]]:
        return np.frombuffer(b"".join(self.frames[-last_frames:]), dtype="<i2")


def spectrum(samples: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    x = samples.astype(np.float64) * np.hanning(len(samples))
    return np.fft.rfftfreq(len(samples), 1 / 8000.0), np.abs(np.fft.rfft(x)) ** 2


def peak_frequency(samples: np.ndarray[Any, Any]) -> float:
    freqs, power = spectrum(samples)
    return float(freqs[int(np.argmax(power[1:])) + 1])


def band_energy(samples: np.ndarray[Any, Any], freq: float, width: float = 40.0) -> float:
    freqs, power = spectrum(samples)
    return float(power[(freqs > freq - width) & (freqs < freq + width)].sum())


class RawPeer(asyncio.DatagramProtocol):
    """A plain UDP socket on loopback recording what arrives (with monotonic arrival times)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[Any, ...], float]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.forward: Callable[[bytes, tuple[Any, ...]], None] | None = None
        self.sock: socket.socket | None = None

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received.append((data, addr, time.monotonic()))
        if self.forward is not None:
            self.forward(data, addr)

    @classmethod
    async def open(cls, host: str = LOOPBACK, port: int = 0) -> RawPeer:
        loop = asyncio.get_running_loop()
        peer = cls()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((host, port))
        transport, _ = await loop.create_datagram_endpoint(lambda: peer, sock=sock)
        peer.transport = transport
        peer.sock = sock  # direct access: asyncio's sendto() silently skips empty datagrams
        return peer

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address[1]

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def rtp(self) -> list[tuple[int, int, int, int, bool, bytes, float]]:
        """Received packets parsed as RTP: (pt, seq, ts, ssrc, marker, payload, arrival)."""
        out = []
        for data, _addr, arrival in self.received:
            if len(data) >= 2 and 192 <= data[1] <= 223:
                continue
            pt, seq, ts, ssrc, marker, offset = parse_header_fast(data)
            out.append((pt, seq, ts, ssrc, marker, data[offset : payload_end(data, offset)], arrival))
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RtpStream:
    """Builds a valid RTP stream (continuous seq/timestamp) for injection."""

    def __init__(self, pt: int = 0, ssrc: int | None = None) -> None:
        self.pt = pt
        self.ssrc = random.getrandbits(32) if ssrc is None else ssrc
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)

    def next(self, payload: bytes, marker: bool = False) -> bytes:
        pkt = build_packet(self.pt, self.seq, self.ts, self.ssrc, payload, marker)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        return pkt


class TickCounter:
    """FrameObserver counting the ticks of the session it watches."""

    def __init__(self) -> None:
        self.ticks = 0

    def on_frames(self, caller: bytes, played: bytes, now: float) -> None:
        self.ticks += 1
