"""Load agent for the benchmark: an orbit-voice v1 websocket server, one connection per call.

    python -m bench.load_agent --port 29000 --out /tmp/agent [--marker-period-ms 500]

For every caller frame it receives (20 ms of PCM16 LE at the agent's rate) it sends
one frame back, so the gateway gets the same audio traffic as from a speaking agent:

* echo calls (the default) get their caller audio straight back;
* probe calls (`metadata.bench.probe` true in `start`) get silence with a marker, a
  20 ms 1 kHz burst, every --marker-period-ms. Their audio comes back from the carrier's
  echo, and the agent notes when each marker was sent and when a loud frame follows
  quiet ones in what it receives (an onset). The relay does the same on the RTP side.

As soon as `start` arrives it sends one frame of silence (the "first agent audio" the
gateway reports as answer_to_first_audio_ms), in place of its reply to the first caller frame. All times are time.time_ns()
(CLOCK_REALTIME), comparable with the relay's kernel timestamps.

Writes, under --out:
  calls.jsonl    one JSON object per connection when it closes
  arrivals.bin   probe calls: <index u32, count u32, count x i64 receive times>
  status.json    every 0.5 s: connections open / started / closed, frames in and out
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import struct
import time
from array import array
from pathlib import Path
from typing import Any, cast

from websockets.http11 import Request
from websockets.protocol import Event, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from bench.g711 import pcm16_loud, tone_frame
from media.agent.frames import BinaryFrameWriter, FrameReader

QUIET_FRAMES_BEFORE_ONSET = 5
MAX_SIZE = 1 << 20
WARMUP_FRAMES = 50


class Agent:
    def __init__(self, out: Path, marker_period_ms: int) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.calls_file = (out / "calls.jsonl").open("a", buffering=1)
        self.arrivals_file = (out / "arrivals.bin").open("ab")
        self.period = max(5, marker_period_ms // 20)
        self.open = 0
        self.started = 0
        self.closed = 0
        self.frames_in = 0
        self.frames_out = 0
        self.errors = 0
        self._markers: dict[int, bytes] = {}

    def marker(self, rate: int) -> bytes:
        if rate not in self._markers:
            self._markers[rate] = tone_frame(rate)
        return self._markers[rate]

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "time_ns": time.time_ns(),
            "open": self.open,
            "started": self.started,
            "closed": self.closed,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "errors": self.errors,
        }

    def write_status(self) -> None:
        tmp = self.out / "status.json.tmp"
        tmp.write_text(json.dumps(self.status()))
        tmp.replace(self.out / "status.json")

    def connection(self) -> AgentConnection:
        return AgentConnection(self)

    def finished(self, conn: AgentConnection) -> None:
        record = conn.record
        if "start_ns" in record:
            self.closed += 1
        record["closed_ns"] = time.time_ns()
        record["markers_ns"] = conn.markers
        record["onsets_ns"] = conn.onsets
        record["frames_in"] = conn.n
        self.calls_file.write(json.dumps(record, separators=(",", ":")) + "\n")
        if conn.arrivals:
            index = int(record.get("index", 0))
            self.arrivals_file.write(struct.pack("<II", index, len(conn.arrivals)) + conn.arrivals.tobytes())
            self.arrivals_file.flush()


class AgentConnection(asyncio.Protocol):
    """One call's websocket, on websockets' sans-I/O server protocol: the agent must cost the
    shared 2-core machine little, or it would slow the gateway it measures. So its frames are
    read and written as the gateway's own agent socket does it (media.agent.frames): whole data
    frames parsed directly, the rest through websockets' protocol; its generator-based parser
    cost 3-4 times as much."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.proto = ServerProtocol(subprotocols=[Subprotocol("orbit-voice.v1")], max_size=MAX_SIZE)
        self.reader = FrameReader(
            self.proto, max_size=MAX_SIZE, on_text=self.on_text, on_binary=self.on_audio, on_events=self.on_events
        )
        self.data_received = self.reader.receive  # type: ignore[method-assign]  # one call less per read
        self.writer = BinaryFrameWriter(masked=False)
        self.transport: asyncio.Transport | None = None
        self.record: dict[str, Any] = {"connected_ns": time.time_ns(), "frames_in": 0, "frames_out": 0}
        self.arrivals = array("q")
        self.markers: list[int] = []
        self.onsets: list[int] = []
        self.probe = False
        self.silence = b""
        self.marker = b""
        self.phase = 0
        self.quiet = 0
        self.n = 0
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.agent.open += 1


    def fail(self, exc: Exception) -> None:
        self.agent.errors += 1
        self.record["error"] = repr(exc)
        if self.proto.state is State.OPEN:
            self.proto.send_close(1011)
        self.flush()

    def on_events(self, events: list[Event]) -> None:
        proto = self.proto
        try:
            for event in events:
                if isinstance(event, Request):
                    proto.send_response(proto.accept(event))
        except Exception as exc:
            self.fail(exc)
            return
        self.flush()

    def on_text(self, message: str | None) -> None:
        try:
            if message is None:
                raise ValueError("text frame is not UTF-8")
            self.on_event(json.loads(message))
        except Exception as exc:
            self.fail(exc)

    def flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.proto.data_to_send():
            if data:
                transport.write(data)
            else:
                transport.close()

    def send_audio(self, payload: bytes) -> None:
        # Unmasked server frame (RFC 6455 5.2), written directly: one per caller frame.
        if self.transport is not None and self.proto.state is State.OPEN:
            self.transport.write(self.writer.frame(payload))
            self.agent.frames_out += 1

    def on_audio(self, message: bytes) -> None:
        try:
            self.n += 1
            n = self.n
            self.agent.frames_in += 1
            if n == 1:
                self.record["first_frame_ns"] = time.time_ns()
            # The frame sent on `start` stands in for the reply to the first caller frame: one frame
            # out per frame in, so the agent never runs a frame ahead of the caller. (With both,
            # whenever that first frame reached the gateway before playout began, every later
            # frame waited one tick in the playout queue, which plays agent audio in order.)
            reply = n > 1
            if not self.probe:
                if reply:
                    self.send_audio(message)
                return
            now = time.time_ns()
            self.arrivals.append(now)
            if pcm16_loud(message):
                if self.quiet >= QUIET_FRAMES_BEFORE_ONSET:
                    self.onsets.append(now)
                self.quiet = 0
            else:
                self.quiet += 1
            if n > WARMUP_FRAMES and n % self.agent.period == self.phase:
                self.markers.append(time.time_ns())
                self.send_audio(self.marker)
            elif reply:
                self.send_audio(self.silence)
        except Exception as exc:  # as for text: counted, and the connection closed with 1011
            self.fail(exc)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        record = self.record
        if kind == "start":
            record["start_ns"] = time.time_ns()
            self.agent.started += 1
            call = event.get("call", {})
            bench = (call.get("metadata") or {}).get("bench") or {}
            rate = int(event.get("media", {}).get("sample_rate", 16000))
            self.probe = bool(bench.get("probe"))
            index = int(bench.get("index", 0))
            record.update(call_id=call.get("id"), to=call.get("to"), index=index, probe=self.probe, rate=rate)
            self.silence = bytes(rate // 50 * 2)
            self.marker = self.agent.marker(rate)
            self.phase = index % self.agent.period
            self.send_audio(self.silence)
        elif kind == "stop":
            record["stop_ns"] = time.time_ns()
            record["stop_reason"] = event.get("reason")
            self.proto.send_close(1000)
            self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.agent.open -= 1
        if not self.done:
            self.done = True
            self.agent.finished(self)


async def run(args: argparse.Namespace) -> None:
    agent = Agent(args.out, args.marker_period_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(agent.connection, args.host, args.port, backlog=1024)
    async with server:
        deadline = loop.time() + args.max_seconds
        while not stop.is_set() and loop.time() < deadline:
            agent.write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    agent.write_status()
    agent.calls_file.close()
    agent.arrivals_file.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--out", type=Path, required=True, help="directory for calls.jsonl, arrivals.bin, status.json")
    parser.add_argument("--marker-period-ms", type=int, default=500, help="time between markers on probe calls")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args))
    else:
        uvloop.run(run(args))


if __name__ == "__main__":
    main()
