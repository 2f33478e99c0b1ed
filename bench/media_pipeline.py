"""What the media pipeline's own Python work costs per call and tick, without sockets.

    .venv/bin/python -m bench.media_pipeline --calls 200 --seconds 10
    .venv/bin/python -m bench.media_pipeline --calls 200 --seconds 10 --profile /tmp/pipeline.pstats

Builds ``--calls`` calls the way the gateway wires them: a MediaSession (PCMU) whose
sink and source is an AgentBridge (orbit-voice at 16 kHz, in the clock's shared
resampling batch) and whose observer is a StereoRecorder writing a WAV file, all on
one MediaClock with four phases under uvloop. The sockets are replaced by sinks
that drop what is written, and a feeder plays the far ends: after each sub-tick
it hands every call of that phase one RTP packet (as the endpoint's datagram
callback) and one agent audio frame (as the websocket's ``data_received``), as a
carrier and an agent that answer at once would.

It reports the process's CPU time per call and tick (user + system, so the WAV
writes count), and how it splits between the three paths: RTP in, agent frame in,
and the clock's tick (jitter buffer, G.711, resampling, the frame to the agent,
the RTP packet out, recording). The system calls that send and receive packets
are not in it; ``make bench`` measures the whole gateway with them. Unlike the
full benchmark it needs no other process, so it compares code changes on a
machine whose speed varies: run both versions alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from media import g711
from media.agent.bridge import AgentBridge
from media.agent.endpoint import AgentEndpoint
from media.agent.orbit_voice import SUBPROTOCOL
from media.agent.websocket import AgentSocket, SocketOptions
from media.clock import MediaClock
from media.negotiated import MediaDirection, NegotiatedMedia
from media.recording import StereoRecorder
from media.resample import FrameResamplers
from media.rtp import build_packet
from media.session import MediaConfig, MediaSession

FRAME_S = 0.020
PHASES = 4
CARRIER = ("127.0.0.1", 40000)


class _NullDatagram:
    """Stands in for a UDP transport: drops what is sent."""

    def sendto(self, data: bytes, addr: object = None) -> None:
        pass

    def close(self) -> None:
        pass


class _NullStream:
    """Stands in for the agent's TCP transport; keeps only what was written before the handshake."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.open = False

    def write(self, data: bytes) -> None:
        if not self.open:
            self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _media(port: int) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address=CARRIER[0],
        remote_port=port,
        remote_rtcp_port=port + 1,
        rtcp_mux=False,
        codec="PCMU",
        payload_type=0,
        local_payload_type=0,
        clock_rate=8000,
        channels=1,
        telephone_event_pt=101,
        local_telephone_event_pt=101,
        ptime=20,
        maxptime=None,
        direction=MediaDirection.SENDRECV,
        remote_hold=False,
        rejected=False,
        media_index=0,
    )


class Call:
    def __init__(
        self,
        index: int,
        session: MediaSession,
        bridge: AgentBridge,
        sock: AgentSocket,
        recorder: StereoRecorder,
    ) -> None:
        self.index = index
        self.session = session
        self.bridge = bridge
        self.sock = sock
        self.recorder = recorder
        self.seq = index * 7 & 0xFFFF
        self.ts = index * 1000
        self.ssrc = 0x10000 + index


async def _agent_socket(agent: AgentEndpoint) -> tuple[AgentSocket, _NullStream, ServerProtocol]:
    """A websocket client connection opened against websockets' server protocol, in memory."""
    sock = AgentSocket(
        parse_uri(agent.url),
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        headers={},
        options=SocketOptions(ping_interval=None),
    )
    stream = _NullStream()
    sock.connection_made(stream)  # type: ignore[arg-type]
    server = ServerProtocol(subprotocols=[Subprotocol(SUBPROTOCOL)])
    server.receive_data(b"".join(stream.written))
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    sock.data_received(b"".join(server.data_to_send()))
    await sock.opened
    stream.open = True
    return sock, stream, server


async def build(n: int, workdir: Path, clock: MediaClock, resamplers: FrameResamplers) -> list[Call]:
    agent = AgentEndpoint(id="bench", url="ws://127.0.0.1:9/agent", sample_rate=16000)
    config = MediaConfig(local_address="127.0.0.1")
    calls = []
    for i in range(n):
        session = MediaSession(
            f"call-{i}", 0, config, on_dtmf=lambda d, ms: None, on_media_timeout=lambda: None
        )
        # Opened without binding sockets: the feeder delivers its packets.
        session._open = True
        session._next_rtcp = time.monotonic() + 5.0 * (1 + i / n)
        session.endpoint._rtp_transport = _NullDatagram()  # type: ignore[assignment]
        session.endpoint._rtcp_transport = _NullDatagram()  # type: ignore[assignment]
        session.set_remote(_media(CARRIER[1] + 2 * i))
        bridge = AgentBridge(
            agent,
            call_id=f"call-{i}",
            account_id="acct",
            from_="+15550000000",
            to="+15551234567",
            on_hangup_request=lambda cause: None,
            on_agent_lost=lambda reason: None,
            resamplers=resamplers,
            ping_interval=None,
        )
        sock, _stream, _server = await _agent_socket(agent)

        async def opened(sock: AgentSocket = sock) -> AgentSocket:
            return sock

        bridge._connector.open = opened  # type: ignore[method-assign]
        await bridge.connect()
        recorder = StereoRecorder(workdir / f"call-{i}.wav")
        session.add_sink(bridge)
        session.set_source(bridge)
        session.add_observer(recorder)
        bridge.start_media(time.monotonic(), send_dtmf=session.send_dtmf)
        clock.add(session)
        calls.append(Call(i, session, bridge, sock, recorder))
    return calls


def _agent_frames(count: int) -> list[bytes]:
    """Server-to-client binary frames of a 16 kHz talker (a tone with a slow envelope)."""
    server = ServerProtocol(state=State.OPEN)
    t = np.arange(320 * count) / 16000.0
    audio = np.sin(2 * math.pi * 220.0 * t) * (0.3 + 0.2 * np.sin(2 * math.pi * 0.5 * t)) * 32767
    pcm = audio.astype("<i2").tobytes()
    frames = []
    for k in range(count):
        server.send_binary(pcm[k * 640 : (k + 1) * 640])
        frames.append(b"".join(server.data_to_send()))
    return frames


def _caller_payloads(count: int) -> list[bytes]:
    t = np.arange(160 * count) / 8000.0
    audio = (np.sin(2 * math.pi * 440.0 * t) * 0.25 * 32767).astype("<i2").tobytes()
    return [g711.ulaw_encode(audio[k * 320 : (k + 1) * 320]) for k in range(count)]


async def run(n: int, seconds: float, profile: str | None = None, warmup: float = 2.0) -> dict[str, Any]:
    clock = MediaClock(phases=PHASES)
    tick_time = [0.0]
    untimed = clock._tick

    def timed_tick(index: int, now: float) -> int:
        t0 = time.perf_counter()
        try:
            return untimed(index, now)
        finally:
            tick_time[0] += time.perf_counter() - t0

    clock._tick = timed_tick  # type: ignore[method-assign]
    resamplers = FrameResamplers()
    clock.add_batch(resamplers.run)
    workdir = Path(tempfile.mkdtemp(prefix="orbit-pipeline-"))
    calls = await build(n, workdir, clock, resamplers)
    groups: list[list[Call]] = [[] for _ in range(PHASES)]
    for call in calls:
        groups[clock._group_of[id(call.session)]].append(call)
    agent_frames = _agent_frames(50)
    payloads = _caller_payloads(50)
    loop = asyncio.get_running_loop()
    spent = {"rtp_in": 0.0, "agent_in": 0.0}
    ticks = 0
    stop_at = 0.0

    def feed(phase: int, k: int) -> None:
        nonlocal ticks
        group = groups[phase]
        packets = []
        for call in group:
            call.seq = (call.seq + 1) & 0xFFFF
            call.ts = (call.ts + 160) & 0xFFFFFFFF
            packets.append(build_packet(0, call.seq, call.ts, call.ssrc, payloads[k % 50]))
        frame = agent_frames[k % 50]
        t0 = time.perf_counter()
        for call, packet in zip(group, packets, strict=True):
            call.session.endpoint._rtp_received(packet, call.session.endpoint._dest)
        t1 = time.perf_counter()
        for call in group:
            call.sock.data_received(frame)
        t2 = time.perf_counter()
        spent["rtp_in"] += t1 - t0
        spent["agent_in"] += t2 - t1
        ticks += len(group)

    def schedule(k: int) -> None:
        # Each phase's far ends answer 2 ms after its sub-tick is due.
        base = clock._t0 + k * FRAME_S + 0.002
        for phase in range(PHASES):
            loop.call_at(base + phase * FRAME_S / PHASES, feed, phase, k)
        if loop.time() < stop_at:
            loop.call_at(base + FRAME_S - 0.010, schedule, k + 1)

    clock.start()
    # Warm up (jitter buffers settle, files open), then measure.
    stop_at = loop.time() + 3600
    schedule(0)
    await asyncio.sleep(warmup)
    base_ticks, base_spent = ticks, dict(spent)
    base_clock, base_late = clock.stats.ticks, clock.stats.late_ticks
    work_before = tick_time[0]
    prof = cProfile.Profile() if profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if prof is not None:
        prof.enable()
    await asyncio.sleep(seconds)
    if prof is not None:
        prof.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stop_at = 0.0
    await clock.stop()
    call_ticks = ticks - base_ticks
    work = tick_time[0] - work_before
    if prof is not None:
        prof.dump_stats(profile)
    recorded_s = sum(call.recorder.close().duration_seconds for call in calls)
    shutil.rmtree(workdir, ignore_errors=True)  # about 75 MB of WAV files at 200 calls
    to_agent = sum(call.bridge.stats.caller_frames_sent for call in calls)
    from_agent_ms = sum(call.bridge.summary()["agent_audio_ms"] for call in calls)
    jb = {"played": 0, "concealed": 0, "dropped": 0, "late": 0}
    for call in calls:
        st = call.session.jitter_buffer_stats
        for key in jb:
            jb[key] += getattr(st, key)
    us = 1e6 / call_ticks
    return {
        "calls": n,
        "seconds": round(wall, 2),
        "call_ticks": call_ticks,
        "clock_ticks": clock.stats.ticks - base_clock,
        "cpu_share_of_core": round(cpu / wall, 3),
        "cpu_us_per_call_tick": round(cpu * us, 2),
        "cpu_pct_per_call": round(cpu / wall / n * 100, 4),
        "rtp_in_us": round((spent["rtp_in"] - base_spent["rtp_in"]) * us, 2),
        "agent_in_us": round((spent["agent_in"] - base_spent["agent_in"]) * us, 2),
        "tick_us": round(work * us, 2),
        "late_ticks": clock.stats.late_ticks - base_late,
        "jitter_buffer": jb,
        "frames_to_agent": to_agent,
        "agent_audio_played_s": round(from_agent_ms / 1000, 1),
        "recorded_s": round(recorded_s, 1),
        "python": sys.version.split()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--profile", help="write a cProfile of the measured window to this file")
    opts = p.parse_args()
    result = uvloop.run(run(opts.calls, opts.seconds, opts.profile))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
