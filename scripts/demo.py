#!/usr/bin/env python3
"""`make demo`: one real phone call through the gateway, end to end, on this machine.

Starts, all on 127.0.0.1 and on free ports:

* a simulated carrier: SIPp (sip-tester) answering as the called party and talking
  (it streams a tone pattern as G.711 mu-law RTP; scenario scripts/demo/carrier.xml);
* the example echo agent (examples/echo_agent.py), which plays the call's audio back;
* a small webhook receiver that prints every event the gateway delivers;
* the gateway on its embedded defaults (SQLite, recordings on local disk), with a
  configuration derived from config/gateway.example.yaml: the trunk points at the
  carrier, agent `agt_echo` at the echo agent.

Then it places a call through the REST API (the README's request body), prints each
status change, keeps the call up for a few seconds, hangs it up through the API,
prints the final call, downloads the recording and checks that it is a playable
stereo 8 kHz WAV. Everything is stopped (SIGTERM, then wait) before it exits: 0 when
all of that worked, 1 with a message saying what did not.

    .venv/bin/python scripts/demo.py [--talk-seconds 4] [--workdir DIR] [--keep]

The work directory (default: a new one under data/demo/) keeps the configuration,
each process's log, the SQLite database and the downloaded recording.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config" / "gateway.example.yaml"
CARRIER_SCENARIO = ROOT / "scripts" / "demo" / "carrier.xml"
CARRIER_AUDIO = ROOT / "scripts" / "demo" / "carrier_audio.py"
ECHO_AGENT = ROOT / "examples" / "echo_agent.py"
LOOPBACK = "127.0.0.1"
FINAL = {"completed", "failed", "busy", "no_answer", "cancelled"}
DRAIN_SECONDS = 5.0  # http.drain_timeout_seconds of the demo gateway

CALL_BODY: dict[str, Any] = {
    "to": "+14155552671",
    "from": "+12025551234",
    "agent_id": "agt_echo",
    "record": True,
    "metadata": {"campaign": "retention"},
}


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


# --------------------------------------------------------------------------- output

_T0 = time.monotonic()
_print_lock = threading.Lock()


def say(who: str, text: str) -> None:
    with _print_lock:
        print(f"[{time.monotonic() - _T0:6.1f}s] {who:<9} {text}", flush=True)


def block(title: str, text: str) -> None:
    with _print_lock:
        print(f"\n--- {title} ---\n{text}\n", flush=True)


# --------------------------------------------------------------------------- ports


def _can_bind(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(*, udp: bool, tcp: bool, taken: set[int]) -> int:
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if port in taken or port > 65000:
            continue
        if (not udp or _can_bind(port, socket.SOCK_DGRAM)) and (not tcp or _can_bind(port, socket.SOCK_STREAM)):
            taken.add(port)
            return port
    raise DemoError("no free port found on 127.0.0.1")


def free_udp_block(size: int, taken: set[int]) -> int:
    """First of `size` consecutive free UDP ports, starting on an even number."""
    for _ in range(500):
        base = free_port(udp=True, tcp=False, taken=set(taken))
        base -= base % 2
        block_ports = range(base, base + size)
        if base < 1024 or base + size > 65535 or any(p in taken for p in block_ports):
            continue
        if all(_can_bind(p, socket.SOCK_DGRAM) for p in block_ports):
            taken.update(block_ports)
            return base
    raise DemoError(f"no block of {size} free UDP ports found on 127.0.0.1")


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    expected_exit: bool = False

    def tail(self, lines: int = 30) -> str:
        return _read_tail(self.log, lines)

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None and not self.expected_exit:
            raise DemoError(f"{self.name} exited early with code {code}; its log ({self.log}):\n{self.tail()}")


@dataclass
class Demo:
    workdir: Path
    talk_seconds: float
    procs: list[Proc] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhook_server: ThreadingHTTPServer | None = None

    def spawn(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(  # noqa: S603 (fixed commands: sipp, this python)
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches the demo only; it stops the rest
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        # The gateway first (it drains, hangs up what is left and flushes), then its peers.
        for proc in sorted(self.procs, key=lambda p: p.name != "gateway"):
            if proc.popen.poll() is not None:
                say(proc.name, f"had already exited ({_exit_text(proc.popen.returncode)})")
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
            grace = DRAIN_SECONDS + 10 if proc.name == "gateway" else 10
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                say(proc.name, f"did not stop within {grace:g} s of SIGTERM; killing it")
                proc.popen.kill()
                proc.popen.wait()
            say(proc.name, f"stopped ({_exit_text(proc.popen.returncode)})")
        if self.webhook_server is not None:
            self.webhook_server.shutdown()
            self.webhook_server.server_close()
            self.webhook_server = None


def _read_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(none)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _exit_text(code: int) -> str:
    if code < 0:
        return f"ended by {signal.Signals(-code).name}"
    return f"exit code {code}"


def wait_until(what: str, check: Any, timeout: float, procs: list[Proc], interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check_alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def udp_bound(port: int) -> bool:
    return not _can_bind(port, socket.SOCK_DGRAM)


def tcp_listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- carrier audio


def carrier_audio() -> bytes:
    """The carrier's beeps (scripts/demo/carrier_audio.py, shared with the compose carrier image)."""
    spec = importlib.util.spec_from_file_location("orbit_demo_carrier_audio", CARRIER_AUDIO)
    if spec is None or spec.loader is None:
        raise DemoError(f"cannot load {CARRIER_AUDIO}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return bytes(module.carrier_audio())


# --------------------------------------------------------------------------- webhooks


def start_webhook_receiver(demo: Demo, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                event = json.loads(body)
            except ValueError:
                event = {"type": "(not JSON)"}
            demo.webhooks.append(event)
            data = event.get("data") or {}
            signed = "signed" if self.headers.get("X-Devotel-Signature") else "unsigned"
            say("webhook", f"{event.get('type')} ({data.get('status')}, {signed})")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
    demo.webhook_server = server


# --------------------------------------------------------------------------- recording


@dataclass
class WavFacts:
    audio_format: int
    channels: int
    sample_rate: int
    bits: int
    data_bytes: int
    levels_dbfs: list[float]

    @property
    def duration(self) -> float:
        frame = self.channels * self.bits // 8
        return self.data_bytes / frame / self.sample_rate if frame and self.sample_rate else 0.0


def inspect_wav(data: bytes) -> WavFacts:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DemoError(f"the recording is not a RIFF/WAVE file (starts with {data[:12]!r})")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    pcm = b""
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            audio_format, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise DemoError("the recording has no fmt chunk")
    audio_format, channels, rate, bits = fmt
    levels: list[float] = []
    if audio_format == 1 and bits == 16 and channels > 0:
        samples = array("h")
        samples.frombytes(pcm[: len(pcm) - len(pcm) % (2 * channels)])
        if sys.byteorder == "big":
            samples.byteswap()
        for ch in range(channels):
            side = samples[ch::channels]
            rms = math.sqrt(sum(s * s for s in side) / len(side)) if len(side) else 0.0
            levels.append(20 * math.log10(rms / 32768) if rms > 0 else -math.inf)
    return WavFacts(audio_format, channels, rate, bits, len(pcm), levels)


# --------------------------------------------------------------------------- the call


def api(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise DemoError(f"{method} {path} failed: {exc}") from None


def get_call(client: httpx.Client, call_id: str) -> dict[str, Any]:
    r = api(client, "GET", f"/v1/voice/calls/{call_id}")
    if r.status_code != 200:
        raise DemoError(f"GET /v1/voice/calls/{call_id} answered {r.status_code}: {r.text}")
    return dict(r.json()["data"])


def follow(
    client: httpx.Client, call_id: str, until: set[str], timeout: float, seen: list[str], procs: list[Proc]
) -> dict[str, Any]:
    """Poll the call, print each status change, return it once its status is in `until`."""
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check_alive()
        call = get_call(client, call_id)
        status = call["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
            extra = ""
            if status in FINAL:
                extra = f" (hangup_cause {call['hangup_cause']}, sip_status {call['sip_status']})"
            say("status", status + extra)
        if status in until:
            return call
        if status in FINAL:
            return call
        if time.monotonic() > deadline:
            raise DemoError(f"the call stayed {status} for {timeout:g} s (went through {' -> '.join(seen)})")
        time.sleep(0.1)


METRICS_SHOWN = (
    "orbit_active_calls",
    "orbit_calls_total",
    "orbit_sip_responses_total",
    "orbit_rtp_packet_loss_ratio_count",
    "orbit_rtp_jitter_ms_sum",
    "orbit_agent_connect_seconds_sum",
    "orbit_webhook_deliveries_total",
    "orbit_recording_uploads_total",
    "orbit_media_clock_lateness_ms_count",
)


def show_metrics(client: httpx.Client) -> None:
    """Print the gateway's own metrics that are not zero; nothing when it has no /metrics."""
    try:
        r = client.get("/metrics")
    except httpx.HTTPError:
        return
    if r.status_code != 200:
        return
    lines = []
    for line in r.text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in METRICS_SHOWN and not line.endswith((" 0", " 0.0")):
            lines.append(line)
    if lines:
        block("GET /metrics (non-zero orbit_ series)", "\n".join(lines))


def run(demo: Demo) -> None:
    if shutil.which("sipp") is None:
        raise DemoError(
            "sipp is not installed: it plays the carrier. Install the sip-tester package "
            "(as root: apt-get install sip-tester, or `make system-deps`)."
        )
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    account = example["accounts"][0]
    api_key = next((k for k in account["api_keys"] if not str(k).startswith("sha256:")), None)
    if api_key is None:
        raise DemoError(f"{EXAMPLE_CONFIG}: the first account needs a plaintext API key for the demo")

    taken: set[int] = set()
    http_port = free_port(udp=False, tcp=True, taken=taken)
    sip_port = free_port(udp=True, tcp=True, taken=taken)
    carrier_port = free_port(udp=True, tcp=False, taken=taken)
    carrier_media = free_udp_block(4, taken)
    control_port = free_port(udp=True, tcp=False, taken=taken)
    agent_port = free_port(udp=False, tcp=True, taken=taken)
    webhook_port = free_port(udp=False, tcp=True, taken=taken)
    rtp_min = free_udp_block(20, taken)

    # 1. The carrier: SIPp answers one call, talks, and ends when the gateway hangs up.
    carrier_dir = demo.workdir / "carrier"
    carrier_dir.mkdir(parents=True, exist_ok=True)
    (carrier_dir / "carrier.ulaw").write_bytes(carrier_audio())
    carrier = demo.spawn(
        "carrier",
        [
            "sipp", "-sf", str(CARRIER_SCENARIO),
            "-t", "u1", "-i", LOOPBACK, "-bind_local", "-p", str(carrier_port),
            "-mi", LOOPBACK, "-mp", str(carrier_media),
            "-ci", LOOPBACK, "-cp", str(control_port),
            "-m", "1", "-timeout", "180s", "-recv_timeout", "120s", "-nostdin",
            "-trace_err", "-error_file", "errors.log",
            "-trace_msg", "-message_file", "messages.log",
        ],
        carrier_dir,
    )
    wait_until("the carrier (SIPp) to listen", lambda: udp_bound(carrier_port), 10, [carrier])
    say("carrier", f"SIPp answers on sip:{LOOPBACK}:{carrier_port} and talks (G.711 mu-law RTP)")

    # 2. The echo agent.
    agent = demo.spawn(
        "agent",
        [sys.executable, str(ECHO_AGENT), "--host", LOOPBACK, "--port", str(agent_port)],
        ROOT,
    )
    wait_until("the echo agent to listen", lambda: tcp_listening(agent_port), 20, [agent])
    agent_url = f"ws://{LOOPBACK}:{agent_port}/agent"
    say("agent", f"echo agent on {agent_url}")

    # 3. Webhooks are printed as they arrive.
    start_webhook_receiver(demo, webhook_port)
    webhook_url = f"http://{LOOPBACK}:{webhook_port}/webhooks/calls"
    say("webhook", f"receiver on {webhook_url}")

    # 4. The gateway, on the example configuration with the demo's ports and peers.
    config = example
    base_url = f"http://{LOOPBACK}:{http_port}"
    config["http"].update(
        {"host": LOOPBACK, "port": http_port, "public_url": base_url, "drain_timeout_seconds": DRAIN_SECONDS}
    )
    config["sip"].update({"host": LOOPBACK, "port": sip_port})
    config["rtp"].update({"port_min": rtp_min, "port_max": rtp_min + 19})
    config["database"]["url"] = f"sqlite+aiosqlite:///{demo.workdir / 'gateway.db'}"
    config["storage"].update({"backend": "local", "local_dir": str(demo.workdir / "recordings")})
    config["agents"][0]["url"] = agent_url
    config["trunks"][0]["uri"] = f"sip:{LOOPBACK}:{carrier_port};transport=udp"
    config["webhooks"]["allow_private_targets"] = True  # the receiver is on loopback
    config["logging"].update({"level": "INFO", "format": "text"})
    config_path = demo.workdir / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY__")}
    gateway = demo.spawn(
        "gateway", [sys.executable, "-m", "gateway", "serve", "--config", str(config_path)], demo.workdir, env
    )

    def ready() -> bool:
        try:
            return httpx.get(base_url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until("the gateway to be ready (GET /readyz)", ready, 60, [gateway], interval=0.2)
    say("gateway", f"API on {base_url} (SQLite, recordings in {demo.workdir / 'recordings'})")

    procs = [gateway, agent]
    with httpx.Client(base_url=base_url, headers={"X-API-Key": api_key}, timeout=60) as client:
        # 5. Place the call.
        body = {**CALL_BODY, "webhook_url": webhook_url}
        r = api(client, "POST", "/v1/voice/calls", json=body)
        if r.status_code != 201:
            raise DemoError(f"POST /v1/voice/calls answered {r.status_code}: {r.text}")
        call_id = r.json()["data"]["id"]
        say("api", f"POST /v1/voice/calls -> 201 {call_id} (to {body['to']}, agent {body['agent_id']}, record)")

        # 6. Follow it until it is answered.
        seen: list[str] = []
        call = follow(client, call_id, {"in_progress"}, 30, seen, procs)
        if call["status"] != "in_progress":
            raise DemoError(
                f"the call was not answered: it ended {call['status']} "
                f"(hangup_cause {call['hangup_cause']}, sip_status {call['sip_status']})\n"
                f"gateway log:\n{gateway.tail()}\ncarrier log:\n{carrier.tail()}"
            )

        # 7. Talk for a while, then hang up through the API.
        say("call", f"in progress: the carrier talks, the echo agent answers; hanging up in {demo.talk_seconds:g} s")
        end = time.monotonic() + demo.talk_seconds
        while time.monotonic() < end:
            follow(client, call_id, {"in_progress", *FINAL}, 5, seen, procs)
            if seen[-1] != "in_progress":
                raise DemoError(
                    f"the call ended by itself ({seen[-1]}) before the demo hung up\n"
                    f"gateway log:\n{gateway.tail()}"
                )
            time.sleep(0.25)
        carrier.expected_exit = True  # SIPp ends after its one call
        r = api(client, "POST", f"/v1/voice/calls/{call_id}/hangup")
        if r.status_code != 200:
            raise DemoError(f"POST /v1/voice/calls/{call_id}/hangup answered {r.status_code}: {r.text}")
        say("api", f"POST /v1/voice/calls/{call_id}/hangup -> 200 {r.json()['data']['status']}")
        call = follow(client, call_id, FINAL, 40, seen, procs)
        say("call", "went " + " -> ".join(seen))
        try:
            code = carrier.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise DemoError(
                "the carrier (SIPp) did not see the call end (no BYE within 10 s of the hangup)\n"
                f"carrier errors:\n{_read_tail(carrier_dir / 'errors.log')}"
            ) from None
        if code != 0:
            raise DemoError(
                f"the carrier (SIPp) says the call did not go as its scenario expects ({_exit_text(code)})\n"
                f"carrier errors:\n{_read_tail(carrier_dir / 'errors.log')}"
            )
        say("carrier", "SIPp saw the whole call: INVITE answered, ACK, BYE answered (exit code 0)")

        if call["status"] != "completed":
            block("final call (GET /v1/voice/calls/" + call_id + ")", json.dumps(call, indent=2))
            raise DemoError(
                f"the call ended {call['status']} (hangup_cause {call['hangup_cause']}), expected completed\n"
                f"gateway log:\n{gateway.tail()}"
            )

        # 8. The recording: wait until it is stored, download it, check it plays.
        say("recording", f"recording_status {call.get('recording_status')}: waiting until it is available")
        deadline = time.monotonic() + 30
        while call.get("recording_status") != "available":
            if call.get("recording_status") in ("failed", None):
                raise DemoError(
                    f"the recording is {call.get('recording_status')!r}, not available\n"
                    f"gateway log:\n{gateway.tail()}"
                )
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the recording was still {call.get('recording_status')!r} 30 s after the call ended\n"
                    f"gateway log:\n{gateway.tail()}"
                )
            time.sleep(0.25)
            call = get_call(client, call_id)
        block("final call (GET /v1/voice/calls/" + call_id + ")", json.dumps(call, indent=2))
        recording_url = call.get("recording_url")
        if not recording_url:
            raise DemoError("recording_status is available but recording_url is empty")
        say("recording", f"recording_url: {recording_url}")
        try:
            r = httpx.get(recording_url, timeout=30)
        except httpx.HTTPError as exc:
            raise DemoError(f"downloading the recording failed: {exc}") from None
        if r.status_code != 200:
            raise DemoError(f"downloading the recording answered {r.status_code}: {r.text[:500]}")
        wav_path = demo.workdir / f"{call_id}.wav"
        wav_path.write_bytes(r.content)
        facts = inspect_wav(r.content)
        levels = ", ".join(
            f"{side} {lvl:.1f} dBFS" if lvl != -math.inf else f"{side} silent"
            for side, lvl in zip(("left (called party)", "right (agent)"), facts.levels_dbfs, strict=False)
        )
        say(
            "recording",
            f"RIFF/WAVE, format {'PCM' if facts.audio_format == 1 else facts.audio_format}, "
            f"{facts.channels} channels, {facts.sample_rate} Hz, {facts.bits}-bit, "
            f"{facts.duration:.2f} s, {len(r.content)} bytes -> {wav_path}",
        )
        if levels:
            say("recording", f"levels: {levels}")
        problems = []
        if facts.channels != 2:
            problems.append(f"{facts.channels} channels, expected 2")
        if facts.sample_rate != 8000:
            problems.append(f"{facts.sample_rate} Hz, expected 8000")
        if facts.duration <= 0:
            problems.append("no audio (duration 0)")
        if problems:
            raise DemoError("the recording does not play as expected: " + "; ".join(problems))
        say("recording", "plays: stereo, 8 kHz, duration > 0")

        # 9. What an operator's Prometheus would see (when the gateway serves /metrics).
        show_metrics(client)

    # 10. Give the last webhooks (call.completed, call.recording_ready) a moment to arrive.
    with contextlib.suppress(DemoError):
        wait_until(
            "the recording_ready webhook",
            lambda: any(e.get("type") == "call.recording_ready" for e in demo.webhooks),
            5,
            [],
        )
    types = [str(e.get("type")) for e in demo.webhooks]
    say("webhook", f"{len(types)} delivered: {', '.join(types) or 'none'}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--talk-seconds", type=float, default=4.0, help="how long the call stays up (default 4)")
    parser.add_argument("--workdir", type=Path, help="where configuration, logs and the recording go")
    args = parser.parse_args(argv)

    workdir = args.workdir or ROOT / "data" / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir=workdir, talk_seconds=args.talk_seconds)
    print(f"orbit demo: a real call through the gateway, all on {LOOPBACK}; files in {workdir}", flush=True)
    code = 0
    with sigterm_as_interrupt():
        try:
            run(demo)
        except DemoError as exc:
            print(f"\norbit demo FAILED: {exc}\n", file=sys.stderr, flush=True)
            code = 1
        except KeyboardInterrupt:
            print("\norbit demo interrupted", file=sys.stderr, flush=True)
            code = 130
        finally:
            say("demo", "stopping everything")
            demo.stop_all()
    if code == 0:
        print(f"\norbit demo OK: call completed, recording played; logs and recording in {workdir}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
