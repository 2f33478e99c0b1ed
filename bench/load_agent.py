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
gateway reports as answer_to_first_audio_ms). All times are time.time_ns()
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
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.g711 import pcm16_loud, tone_frame

QUIET_FRAMES_BEFORE_ONSET = 5
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

    async def session(self, ws: ServerConnection) -> None:
        self.open += 1
        record: dict[str, Any] = {"connected_ns": time.time_ns(), "frames_in": 0, "frames_out": 0}
        arrivals = array("q")
        markers: list[int] = []
        onsets: list[int] = []
        try:
            await self._serve(ws, record, arrivals, markers, onsets)
        except ConnectionClosed:
            pass
        except Exception as exc:
            self.errors += 1
            record["error"] = repr(exc)
        finally:
            self.open -= 1
            if "start_ns" in record:
                self.closed += 1
            record["closed_ns"] = time.time_ns()
            record["markers_ns"] = markers
            record["onsets_ns"] = onsets
            self.calls_file.write(json.dumps(record, separators=(",", ":")) + "\n")
            if arrivals:
                index = int(record.get("index", 0))
                self.arrivals_file.write(struct.pack("<II", index, len(arrivals)) + arrivals.tobytes())
                self.arrivals_file.flush()

    async def _serve(
        self,
        ws: ServerConnection,
        record: dict[str, Any],
        arrivals: array[int],
        markers: list[int],
        onsets: list[int],
    ) -> None:
        probe = False
        silence = b""
        marker = b""
        phase = 0
        quiet = 0
        n = 0
        async for message in ws:
            if isinstance(message, bytes):
                n += 1
                self.frames_in += 1
                if n == 1:
                    record["first_frame_ns"] = time.time_ns()
                if probe:
                    now = time.time_ns()
                    arrivals.append(now)
                    if pcm16_loud(message):
                        if quiet >= QUIET_FRAMES_BEFORE_ONSET:
                            onsets.append(now)
                        quiet = 0
                    else:
                        quiet += 1
                    if n > WARMUP_FRAMES and n % self.period == phase:
                        markers.append(time.time_ns())
                        await ws.send(marker)
                    else:
                        await ws.send(silence)
                else:
                    await ws.send(message)
                self.frames_out += 1
                continue
            event = json.loads(message)
            kind = event.get("type")
            if kind == "start":
                record["start_ns"] = time.time_ns()
                self.started += 1
                call = event.get("call", {})
                bench = (call.get("metadata") or {}).get("bench") or {}
                rate = int(event.get("media", {}).get("sample_rate", 16000))
                probe = bool(bench.get("probe"))
                index = int(bench.get("index", 0))
                record.update(call_id=call.get("id"), to=call.get("to"), index=index, probe=probe, rate=rate)
                silence = bytes(rate // 50 * 2)
                marker = self.marker(rate)
                phase = index % self.period
                await ws.send(silence)
                self.frames_out += 1
            elif kind == "stop":
                record["stop_ns"] = time.time_ns()
                record["stop_reason"] = event.get("reason")
                await ws.close()
                break
        record["frames_in"] = n


async def run(args: argparse.Namespace) -> None:
    agent = Agent(args.out, args.marker_period_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        agent.session,
        args.host,
        args.port,
        subprotocols=[Subprotocol("orbit-voice.v1")],
        compression=None,
        ping_interval=None,
        max_queue=64,
        backlog=1024,
    ):
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
