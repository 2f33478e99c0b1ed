"""Load benchmark of the gateway: `python -m bench.run` (what it measures and how: BENCHMARKS.md).

It starts, on loopback, the gateway (`orbit-gateway serve`, uvloop) with a throwaway
configuration (SQLite and recordings in a temporary directory, recording on), SIPp as
the carrier (answers, -rtp_echo), the load agent (bench/load_agent.py) and the RTP relay
(bench/relay.py) that the probe calls' media passes through. Then:

  baseline  a few calls: fixed pipeline delays at no load, and warm-up
  steps     N concurrent calls for each of --steps, held --hold-seconds: CPU, RSS, fds,
            latency both ways, pacing, loss, jitter, the gateway's own media counters;
            then a py-spy profile (--profile-seconds) while the calls are still up
  soak      --soak-calls calls kept up for --soak-minutes (each lives --soak-call-seconds,
            then is replaced): RSS trend
  setup     --setup-rate new calls per second for --setup-seconds, each hung up by SIPp
            after --setup-call-seconds: success rate, POST -> INVITE, 200 OK -> agent

Results: JSON in bench/results/<timestamp>.json (or --out). Everything started is
stopped at the end, on Ctrl-C and on failure.

    .venv/bin/python -m bench.run                        # the full run (make bench)
    .venv/bin/python -m bench.run --smoke                # 3 calls, a few seconds
    .venv/bin/python -m bench.run --steps 50,100 --hold-seconds 20 --soak-minutes 0 --setup-seconds 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import analysis, procstat
from bench.procs import LOOPBACK, PortPicker, Proc, tcp_listening, udp_bound

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCENARIO = REPO / "bench" / "scenarios" / "uas_bench.xml"
API_KEY = "dv_test_sk_bench_0123456789abcdef"
AGENT_ID = "agt_load"
FROM = "+12025551234"
FINAL = {"completed", "failed", "busy", "no_answer", "cancelled"}


@dataclass
class Options:
    steps: list[int] = field(default_factory=lambda: [50, 100, 200, 400])
    hold_seconds: float = 25.0
    gateways: int = 1
    postgres: bool = False  # every gateway on one PostgreSQL (a cluster) instead of a SQLite file each
    settle_seconds: float = 2.0
    ramp_rate: float = 20.0
    probe_calls: int = 32
    marker_period_ms: int = 500
    baseline_calls: int = 4
    baseline_seconds: float = 8.0
    setup_rate: float = 20.0
    setup_seconds: float = 60.0
    setup_call_seconds: float = 5.0
    soak_minutes: float = 10.0
    soak_calls: int = 100
    soak_call_seconds: float = 60.0
    profile_seconds: float = 10.0
    agent_rate: int = 16000
    gateway_loop: str = "uvloop"
    wait_quiet: float = 0.0
    quiet_retries: int = 1
    quiet_threshold: float = 0.15
    out: Path | None = None
    keep_workdir: bool = False
    smoke: bool = False


@dataclass
class Placed:
    index: int
    number: str
    probe: bool
    phase: str
    post_ns: int = 0
    response_ns: int = 0
    http_status: int = 0
    call_id: str | None = None
    error: str | None = None
    view: dict[str, Any] | None = None
    gw: int = 0  # which gateway process carries it


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _die_with_parent() -> None:
    # Children get SIGTERM if the benchmark itself dies without cleaning up (Linux).
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Bench:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-smoke" if opts.smoke else "")
        self.out_path = (opts.out or RESULTS / f"{stamp}.json").resolve()
        self.work = Path(tempfile.mkdtemp(prefix="orbit-bench-"))
        self.ports = PortPicker()
        max_calls = max([*opts.steps, opts.soak_calls, opts.baseline_calls, 1])
        concurrent_setup = int(opts.setup_rate * (opts.setup_call_seconds + 10)) if opts.setup_seconds > 0 else 0
        self.capacity = max(max_calls, concurrent_setup) + 50
        n_gw = max(1, opts.gateways)
        self.http_ports = [self.ports.port(tcp=True) for _ in range(n_gw)]
        self.sip_ports = [self.ports.port() for _ in range(n_gw)]
        self.http_port, self.sip_port = self.http_ports[0], self.sip_ports[0]
        self.sipp_port = self.ports.port(tcp=True)
        self.sipp_media = self.ports.block(4, align=2)
        self.relay_port = self.ports.block(2, align=2)
        self.agent_port = self.ports.port(tcp=True)
        self.rtp_mins = [self.ports.block(2 * self.capacity, align=2) for _ in range(n_gw)]
        self.rtp_min = self.rtp_mins[0]
        self.procs: dict[str, Proc] = {}
        self.sipp_logs: list[Path] = []
        self.gateway_logs: list[Path] = []
        self.idle_now: dict[str, Any] = {}
        self.gateway_tag = ""
        self.placed: list[Placed] = []
        self.next_index = 1
        self.apis: list[httpx.AsyncClient] = []
        self.pg: Any = None  # tests.support.postgres.PostgresServer when --postgres
        self.started_wall = time.time()
        self.result: dict[str, Any] = {}
        self.self_pid = os.getpid()
        self.spans: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, cmd: Sequence[str], env: dict[str, str] | None = None, tag: str = "") -> Proc:
        log_path = self.work / f"{name}{'-' + tag if tag else ''}.log"
        proc = Proc(name, cmd, log_path, self.work, env=env, preexec=_die_with_parent)
        self.procs[name] = proc
        return proc

    def start_agent(self) -> None:
        out = self.work / "agent"
        proc = self._spawn(
            "agent",
            [sys.executable, "-m", "bench.load_agent", "--port", str(self.agent_port), "--out", str(out),
             "--marker-period-ms", str(self.opts.marker_period_ms), "--max-seconds", str(self.max_seconds())],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        proc.wait_until(lambda: tcp_listening(self.agent_port), 20, "listening")

    def start_relay(self) -> None:
        proc = self._spawn(
            "relay",
            [sys.executable, "-m", "bench.relay", "--port", str(self.relay_port), "--target-port",
             str(self.sipp_media), "--out", str(self.work / "relay.bin"), "--max-seconds", str(self.max_seconds())],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        proc.wait_until(lambda: udp_bound(self.relay_port), 20, "bound")

    def start_sipp(self, hold_ms: int) -> None:
        old = self.procs.pop("sipp", None)
        if old is not None:
            old.stop()
            deadline = time.monotonic() + 10
            while udp_bound(self.sipp_port) and time.monotonic() < deadline:
                time.sleep(0.05)
        log_file = self.work / f"sipp-{len(self.sipp_logs)}.log"
        self.sipp_logs.append(log_file)
        binary = shutil.which("sipp")
        if binary is None:
            raise RuntimeError("sipp not found: install the Debian package sip-tester (make test does)")
        proc = self._spawn(
            "sipp",
            [binary, "-sf", str(SCENARIO), "-t", "u1", "-i", LOOPBACK, "-p", str(self.sipp_port),
             "-mi", LOOPBACK, "-mp", str(self.sipp_media), "-rtp_echo", "-set", "hold_ms", str(hold_ms),
             "-m", "1000000", "-l", str(self.capacity * 2), "-timeout", f"{int(self.max_seconds())}s",
             "-trace_logs", "-log_file", str(log_file), "-nostdin"],
        )
        proc.wait_until(lambda: udp_bound(self.sipp_port), 20, "bound")

    def gateway_names(self) -> list[str]:
        """Process names: "gateway", then "gateway-2", ... when several run side by side."""
        return ["gateway"] + [f"gateway-{i + 1}" for i in range(1, len(self.http_ports))]

    def gateway_config(self, tag: str, i: int = 0) -> dict[str, Any]:
        http, sip, rtp = self.http_ports[i], self.sip_ports[i], self.rtp_mins[i]
        name = f"{tag}-{i + 1}" if len(self.http_ports) > 1 else tag
        return {
            "node_id": f"bench-{i + 1}",
            "http": {"host": LOOPBACK, "port": http, "public_url": f"http://{LOOPBACK}:{http}",
                     "drain_timeout_seconds": 5},
            "sip": {"host": LOOPBACK, "port": sip, "transports": ["udp"]},
            "rtp": {"port_min": rtp, "port_max": rtp + 2 * self.capacity - 1},
            "database": {"url": self.database_url(tag, name)},
            "storage": {"backend": "local", "local_dir": str(self.work / f"recordings-{name}")},
            "accounts": [{"id": "acct_bench", "api_keys": [API_KEY], "numbers": [FROM], "default_from": FROM}],
            "agents": [{"id": AGENT_ID, "url": f"ws://{LOOPBACK}:{self.agent_port}/", "protocol": "orbit-voice",
                        "sample_rate": self.opts.agent_rate, "connect_timeout_seconds": 10}],
            "trunks": [{"id": "sipp", "uri": f"sip:{LOOPBACK}:{self.sipp_port};transport=udp", "codecs": ["PCMU"],
                        "max_concurrent": self.capacity, "calls_per_second": 500, "queue_size": self.capacity,
                        "ring_timeout_seconds": 30}],
            "logging": {"level": "WARNING", "format": "json"},
        }

    def database_url(self, tag: str, name: str) -> str:
        if not self.opts.postgres:
            return f"sqlite+aiosqlite:///{self.work}/gateway-{name}.db"
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.pg.port}/bench_{tag.replace('-', '_')}"

    def fresh_database(self, tag: str) -> None:
        """One PostgreSQL database per phase, shared by every gateway (--postgres)."""
        if not self.opts.postgres:
            return
        if self.pg is None:
            from tests.support.postgres import PostgresServer

            self.pg = PostgresServer().start()
            log(f"PostgreSQL on port {self.pg.port}")
        name = f"bench_{tag.replace('-', '_')}"
        for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
            subprocess.run(["psql", "-h", LOOPBACK, "-p", str(self.pg.port), "-U", "postgres", "-qc", sql],
                           check=True, capture_output=True, timeout=60)

    def start_gateway(self, tag: str) -> None:
        """Fresh gateway processes (new databases and recordings) for one phase."""
        self.stop_gateway()
        self.gateway_tag = tag
        self.fresh_database(tag)
        script = Path(sys.executable).parent / "orbit-gateway"
        for i, name in enumerate(self.gateway_names()):
            config = self.gateway_config(tag, i)
            path = self.work / f"{name}-{tag}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            self.gateway_logs.append(self.work / f"{name}-{tag}.log")
            if self.opts.gateway_loop == "asyncio":
                cmd = [sys.executable, "-m", "bench.serve_asyncio", "--config", str(path)]
            elif script.exists():
                cmd = [str(script), "serve", "--config", str(path)]
            else:
                cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(path)]
            proc = self._spawn(name, cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, tag=tag)
            port = config["http"]["port"]

            def ready(port: int = port) -> bool:
                try:
                    return httpx.get(f"http://{LOOPBACK}:{port}/readyz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            proc.wait_until(ready, 60, "ready")
            log(f"{tag}: fresh {name}, pid {proc.pid}")

    def stop_gateway(self) -> None:
        """Stop the current gateways and drop their recordings (about 2 MB per call-minute, never read)."""
        for name in self.gateway_names():
            old = self.procs.pop(name, None)
            if old is not None:
                old.stop(grace=20)
        if self.gateway_tag:
            for path in self.work.glob(f"recordings-{self.gateway_tag}*"):
                shutil.rmtree(path, ignore_errors=True)

    def max_seconds(self) -> float:
        o = self.opts
        steps = sum(n / o.ramp_rate + (1 + o.quiet_retries) * o.hold_seconds + o.profile_seconds + 120 for n in o.steps)
        return 600 + steps + o.soak_minutes * 60 + o.setup_seconds + o.setup_call_seconds + o.baseline_seconds

    def stop_all(self) -> None:
        self.stop_gateway()
        for name in ("sipp", "agent", "relay"):
            proc = self.procs.get(name)
            if proc is not None:
                proc.stop(grace=15 if name == "gateway" else 5)

    def pids(self) -> dict[str, int]:
        out = {name: p.pid for name, p in self.procs.items() if p.running()}
        out["harness"] = self.self_pid
        return out

    # ------------------------------------------------------------------ API

    def number(self, index: int, probe: bool) -> str:
        port = self.relay_port if probe else self.sipp_media
        # A possible number (Berlin, 15 digits) that carries the RTP port for SIPp's scenario.
        return f"+4930{port:05d}{index:06d}"

    def new_call(self, probe: bool, phase: str) -> Placed:
        index = self.next_index
        self.next_index += 1
        placed = Placed(index=index, number=self.number(index, probe), probe=probe, phase=phase,
                        gw=index % len(self.http_ports))
        self.placed.append(placed)
        return placed

    async def create(self, probe: bool, phase: str) -> Placed:
        return await self.post(self.new_call(probe, phase))

    async def post(self, placed: Placed) -> Placed:
        api = self.apis[placed.gw]
        probe, index, phase = placed.probe, placed.index, placed.phase
        body = {"to": placed.number, "from": FROM, "agent_id": AGENT_ID, "record": True, "max_duration": 7200,
                "metadata": {"bench": {"probe": probe, "index": index, "phase": phase}}}
        placed.post_ns = time.time_ns()
        try:
            r = await api.post("/v1/voice/calls", json=body)
            placed.response_ns = time.time_ns()
            placed.http_status = r.status_code
            if r.status_code == 201:
                placed.call_id = r.json()["data"]["id"]
            else:
                placed.error = r.text[:300]
        except httpx.HTTPError as exc:
            placed.response_ns = time.time_ns()
            placed.error = repr(exc)
        return placed

    async def place(
        self, count: int, rate: float, phase: str, probes: int = 0, answer_within: float = 25.0
    ) -> list[Placed]:
        """Create `count` calls, open loop at `rate` per second; the first `probes` are probe calls."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        calls: list[Placed] = []
        tasks = []
        for i in range(count):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            calls.append(self.new_call(i < probes, phase))
            tasks.append(asyncio.create_task(self.post(calls[-1])))
        _, pending = await asyncio.wait(tasks, timeout=answer_within)
        for task in pending:
            task.cancel()
        for p in calls:
            if p.call_id is None and p.error is None and p.http_status == 0:
                p.error = f"no answer within {answer_within:g}s of the last POST"
                p.response_ns = time.time_ns()
        return calls

    async def _bounded(self, items: Sequence[Placed], fn: Callable[[Placed], Awaitable[None]], limit: int = 24) -> None:
        sem = asyncio.Semaphore(limit)

        async def one(p: Placed) -> None:
            async with sem:
                await fn(p)

        await asyncio.gather(*(one(p) for p in items))

    async def hangup_all(self, calls: Sequence[Placed]) -> None:
        async def hang(p: Placed) -> None:
            if p.call_id is None:
                return
            with contextlib.suppress(httpx.HTTPError):
                await self.apis[p.gw].post(f"/v1/voice/calls/{p.call_id}/hangup")

        await self._bounded(calls, hang, limit=32)

    async def fetch_views(self, calls: Sequence[Placed], wait_final: float = 30.0) -> None:
        deadline = time.monotonic() + wait_final

        async def get(p: Placed) -> None:
            if p.call_id is None:
                return
            while True:
                try:
                    r = await self.apis[p.gw].get(f"/v1/voice/calls/{p.call_id}")
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code == 200:
                    p.view = r.json()["data"]
                    if p.view.get("status") in FINAL or time.monotonic() > deadline:
                        return
                elif time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.5)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bounded(calls, get), wait_final + 10)

    async def scrape(self) -> list[str | None]:
        """Every gateway process's GET /metrics text (None where it could not be read)."""
        texts: list[str | None] = []
        for api in self.apis:
            try:
                r = await api.get("/metrics")
            except httpx.HTTPError:
                texts.append(None)
                continue
            texts.append(r.text if r.status_code == 200 else None)
        return texts

    # ------------------------------------------------------------------ agent status

    def agent_status(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.work / "agent" / "status.json").read_text()))
        return {}

    def agent_active(self) -> int:
        s = self.agent_status()
        return int(s.get("started", 0)) - int(s.get("closed", 0))

    async def wait_agent(self, predicate: Callable[[int], bool], within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if predicate(self.agent_active()):
                return True
            await asyncio.sleep(0.25)
        return predicate(self.agent_active())

    # ------------------------------------------------------------------ measuring

    def samples(self) -> dict[str, Any]:
        return {
            "procs": {name: procstat.sample(pid) for name, pid in self.pids().items()},
            "machine": procstat.machine_sample(),
            "agent": self.agent_status(),
            "wall_ns": time.time_ns(),
        }

    @staticmethod
    def usage(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        procs = {name: procstat.usage(before["procs"].get(name), after["procs"].get(name)) for name in after["procs"]}
        extra = sorted(name for name in procs if name.startswith("gateway-"))
        if extra and "gateway" in procs:
            # Several gateway processes: "gateway" is their sum, each is also kept on its own.
            parts = [procs["gateway"], *(procs[name] for name in extra)]
            procs["gateway-1"] = procs["gateway"]
            procs["gateway"] = {
                key: (round(sum(p[key] for p in parts), 4) if all(p.get(key) is not None for p in parts) else None)
                for key in parts[0]
            }
        wall = (after["wall_ns"] - before["wall_ns"]) / 1e9
        frames = int(after["agent"].get("frames_in", 0)) - int(before["agent"].get("frames_in", 0))
        machine = procstat.machine_usage(before["machine"], after["machine"])
        ours = sum(p["cpu_core"] or 0.0 for p in procs.values())
        busy = machine.get("busy_share")
        cores = os.cpu_count() or 1
        return {
            "seconds": round(wall, 2),
            "cpu": procs,
            "machine": machine,
            "benchmark_processes_core": round(ours, 4),
            "other_processes_core": round(max(0.0, busy * cores - ours), 4) if busy is not None else None,
            "agent_frames_in_per_s": round(frames / wall, 1) if wall > 0 else None,
        }

    async def profile(self, tag: str) -> dict[str, Any]:
        seconds = self.opts.profile_seconds
        pyspy = Path(sys.executable).parent / "py-spy"
        if seconds <= 0 or "gateway" not in self.procs:
            return {}
        if not pyspy.exists():
            found = shutil.which("py-spy")
            if found is None:
                return {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
            pyspy = Path(found)
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        pid = str(self.procs["gateway"].pid)
        svg = self.out_path.with_name(f"{self.out_path.stem}-profile-{tag}.svg")
        raw = self.work / f"profile-{tag}.txt"
        common = ["record", "--pid", pid, "--duration", str(int(seconds)), "--rate", "100", "--nonblocking"]
        runs = [
            await asyncio.create_subprocess_exec(str(pyspy), *common, "--format", fmt, "--output", str(path),
                                                 stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            for fmt, path in (("raw", raw), ("flamegraph", svg))
        ]
        errors = []
        for run in runs:
            try:
                _, err = await asyncio.wait_for(run.communicate(), seconds + 30)
            except TimeoutError:
                run.kill()
                await run.wait()
                err = b"timed out"
            if run.returncode:
                errors.append(err.decode(errors="replace")[-300:])
        top = analysis.profile_top(raw)
        top["svg"] = (str(svg.relative_to(REPO)) if svg.is_relative_to(REPO) else str(svg)) if svg.exists() else None
        top["seconds"] = seconds
        if errors:
            top["errors"] = errors
        return top

    # ------------------------------------------------------------------ phases

    async def held_phase(self, name: str, n: int, hold: float, probes: int, profile: bool) -> dict[str, Any]:
        """n calls up together, held while measuring, then hung up and read back."""
        o = self.opts
        active_before = self.agent_active()
        rss_idle = self.idle_now.get("rss_mb")
        fds_idle = self.idle_now.get("fds") or 0
        span_start = time.time_ns()
        log(f"{name}: placing {n} calls at {o.ramp_rate:g}/s ({min(probes, n)} probe calls through the relay)")
        t_place = time.monotonic()
        placed = await self.place(n, o.ramp_rate, name, probes=min(probes, n))
        created = [p for p in placed if p.call_id]
        up = await self.wait_established(active_before + len(created), within=20 + n / o.ramp_rate)
        established = self.agent_active() - active_before
        ramp_s = time.monotonic() - t_place
        log(f"{name}: {len(created)} created, {established} with the agent after {ramp_s:.1f}s"
            + ("" if up else " (not all: gave up waiting)"))
        await asyncio.sleep(o.settle_seconds)
        attempts = 0
        while True:
            attempts += 1
            metrics_before = await self.scrape()
            before = self.samples()
            await asyncio.sleep(hold)
            after = self.samples()
            metrics_after = await self.scrape()
            usage = self.usage(before, after)
            other = usage.get("other_processes_core")
            if other is None or other <= o.quiet_threshold or attempts > o.quiet_retries:
                break
            log(f"{name}: other processes used {other * 100:.0f}% of a core during the window: measuring again")
        still_up = self.agent_active() - active_before
        window = (before["wall_ns"], after["wall_ns"])
        prof = await self.profile(name) if profile else {}
        log(f"{name}: hanging up")
        metrics_hangup = await self.scrape()
        t_hangup = time.monotonic()
        await self.teardown(created, active_before)
        hangup_s = time.monotonic() - t_hangup
        await asyncio.sleep(1.0)
        metrics_done = await self.scrape()
        gw_after = [procstat.sample(self.procs[name].pid) for name in self.gateway_names() if name in self.procs]
        g = usage["cpu"].get("gateway", {})
        cpu = g.get("cpu_core")
        rss = g.get("rss_mb")
        per_call = max(established, 1)
        self.spans[name] = (span_start, time.time_ns())
        phase = {
            "name": name,
            "calls": n,
            "created": len(created),
            "established": established,
            "up_at_end_of_window": still_up,
            "ramp_seconds": round(ramp_s, 1),
            "window_ns": list(window),
            "usage": usage,
            "gateway_cpu_pct_per_call": round(cpu * 100 / per_call, 4) if cpu is not None else None,
            "gateway_rss_mb": rss,
            "gateway_rss_per_call_kb": round((rss - rss_idle) * 1000 / per_call, 1)
            if rss is not None and rss_idle is not None else None,
            "gateway_fds": g.get("fds"),
            "gateway_fds_per_call": round((g["fds"] - fds_idle) / per_call, 2) if g.get("fds") is not None else None,
            "gateway_idle": dict(self.idle_now),
            "measure_attempts": attempts,
            "left_unfinished": sum(1 for p in created if (p.view or {}).get("status") not in FINAL),
            "gateway_threads": g.get("threads"),
            "gateway_rss_mb_after_hangup": round(sum(g.rss_bytes for g in gw_after if g) / 1e6, 2)
            if any(gw_after) else None,
            "gateway_processes": len(self.http_ports),
            "clock_lateness_ms": clock_lateness(metrics_before[0], metrics_after[0]),
            "playout_window": playout_delta(playout_sum(metrics_before), playout_sum(metrics_after)),
            # Every call hung up at once (32 requests in flight): what the calls still up went through.
            "hangup": {"seconds": round(hangup_s, 1),
                       "clock_lateness_ms": clock_lateness(metrics_hangup[0], metrics_done[0]),
                       "playout": playout_delta(playout_sum(metrics_hangup), playout_sum(metrics_done))},
            "gateway_calls": analysis.aggregate_calls([p.view for p in created if p.view]),
            "probes": [p.number for p in created if p.probe],
            "profile": prof,
        }
        return phase

    async def wait_established(self, target: int, within: float, stall: float = 10.0) -> bool:
        """Wait for `target` agent sessions; give up early once their number stops growing for `stall` s."""
        deadline = time.monotonic() + within
        best, since = self.agent_active(), time.monotonic()
        while time.monotonic() < deadline:
            now_active = self.agent_active()
            if now_active >= target:
                return True
            if now_active > best:
                best, since = now_active, time.monotonic()
            elif time.monotonic() - since > stall:
                return False
            await asyncio.sleep(0.25)
        return self.agent_active() >= target

    async def teardown(self, calls: Sequence[Placed], active_before: int, budget: float = 60.0) -> None:
        """Hang up and read back every call, within `budget` seconds even when the gateway is swamped."""
        deadline = time.monotonic() + budget
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.hangup_all(calls), budget * 0.6)
        await self.fetch_views(calls, wait_final=max(5.0, deadline - time.monotonic() - 5))
        await self.wait_agent(lambda a: a <= active_before, max(1.0, deadline - time.monotonic()))

    async def idle(self) -> dict[str, Any]:
        """The fresh gateway with no calls: CPU, RSS and fds that per-call figures are counted from."""
        await asyncio.sleep(1)
        before = self.samples()
        await asyncio.sleep(3)
        after = self.samples()
        g = self.usage(before, after)["cpu"].get("gateway", {})
        self.idle_now = {"cpu_core": g.get("cpu_core"), "rss_mb": g.get("rss_mb"), "fds": g.get("fds"),
                         "threads": g.get("threads")}
        return self.idle_now

    async def soak(self) -> dict[str, Any]:
        o = self.opts
        n, life = o.soak_calls, o.soak_call_seconds
        end_at = time.monotonic() + o.soak_minutes * 60
        log(f"soak: {n} calls for {o.soak_minutes:g} min, each up {life:g}s then replaced")
        live: dict[str, tuple[float, Placed]] = {}
        everyone: list[Placed] = []
        tasks: set[asyncio.Task[Any]] = set()

        def track(p: Placed, ends: float) -> None:
            everyone.append(p)
            if p.call_id:
                live[p.call_id] = (ends, p)

        start = time.monotonic()
        span_start = time.time_ns()
        first = await self.place(n, o.ramp_rate, "soak")
        for p in first:
            track(p, time.monotonic() + random.uniform(0.1, 1.0) * life)
        rss: list[tuple[float, float]] = []
        cpu: list[dict[str, Any]] = []
        prev = self.samples()
        next_sample = time.monotonic() + 10
        hangups = 0
        while time.monotonic() < end_at:
            now = time.monotonic()
            due = [cid for cid, (ends, _) in live.items() if ends <= now]
            for cid in due:
                _, p = live.pop(cid)
                hangups += 1
                t = asyncio.create_task(self.hangup_all([p]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)

                async def replace() -> None:
                    q = await self.create(False, "soak")
                    track(q, time.monotonic() + life)

                t2 = asyncio.create_task(replace())
                tasks.add(t2)
                t2.add_done_callback(tasks.discard)
            if now >= next_sample:
                cur = self.samples()
                g = cur["procs"].get("gateway")
                if g is not None:
                    rss.append((round(now - start, 1), round(g.rss_bytes / 1e6, 2)))
                u = self.usage(prev, cur)
                cpu.append({"t": round(now - start, 1), "gateway_cpu_core": u["cpu"].get("gateway", {}).get("cpu_core"),
                            "machine_busy": u["machine"]["busy_share"], "calls": self.agent_active()})
                prev = cur
                next_sample += 10
            await asyncio.sleep(0.25)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        log("soak: hanging up")
        created = [p for p in everyone if p.call_id]
        await self.teardown([p for _, p in live.values()], 0, budget=60)
        await self.fetch_views(created, wait_final=10)
        calls = analysis.aggregate_calls([p.view for p in created if p.view])
        self.spans["soak"] = (span_start, time.time_ns())
        return {
            "calls_target": n,
            "minutes": o.soak_minutes,
            "call_seconds": life,
            "calls_placed": len(everyone),
            "calls_created": len(created),
            "hangups_during": hangups,
            "rss_mb_samples": rss,
            "rss_trend": analysis.rss_trend(rss, skip_s=min(120.0, o.soak_minutes * 60 / 4)),
            "cpu_samples": cpu,
            "gateway_calls": calls,
        }

    async def setup_rate(self) -> dict[str, Any]:
        o = self.opts
        total = max(1, round(o.setup_rate * o.setup_seconds))
        log(f"setup: {total} calls at {o.setup_rate:g}/s, SIPp hangs each up after {o.setup_call_seconds:g}s")
        self.start_sipp(int(o.setup_call_seconds * 1000))
        span_start = time.time_ns()
        before = self.samples()
        t0 = time.monotonic()

        async def profile_late() -> dict[str, Any]:
            await asyncio.sleep(max(0.0, o.setup_seconds - o.profile_seconds - 1))
            return await self.profile("setup")

        profiling = asyncio.create_task(profile_late()) if o.setup_seconds >= 2 * o.profile_seconds > 0 else None
        placed = await self.place(total, o.setup_rate, "setup")
        placing_s = time.monotonic() - t0
        after = self.samples()
        prof = await profiling if profiling is not None else {}
        usage = self.usage(before, after)
        created = [p for p in placed if p.call_id]
        await self.wait_agent(lambda a: a <= 0, o.setup_call_seconds + 40)
        await self.fetch_views(created, wait_final=o.setup_call_seconds + 40)
        self.spans["setup"] = (span_start, time.time_ns())
        self.stop_sipp_for_logs()
        sipp = analysis.read_sipp_log(self.sipp_logs[-1:])
        agent = {c.get("to"): c for c in analysis.read_agent_calls(self.work / "agent" / "calls.jsonl")}
        post_to_invite, post_response, ok_to_start, ok_to_first_frame = [], [], [], []
        ok = 0
        failures: dict[str, int] = {}
        for p in placed:
            view = p.view or {}
            good = p.call_id is not None and view.get("status") == "completed" and view.get("answered_at") is not None
            if good:
                ok += 1
            else:
                why = f"http {p.http_status}" if p.call_id is None else f"{view.get('status')}/{view.get('hangup_cause')}"
                failures[why] = failures.get(why, 0) + 1
            post_response.append((p.response_ns - p.post_ns) / 1e6)
            s = sipp.get(p.number.lstrip("+"))
            if s is not None and s.invite_ns is not None:
                post_to_invite.append((s.invite_ns - p.post_ns) / 1e6)
            a = agent.get(p.number)
            if s is not None and s.ok_ns is not None and a is not None:
                if a.get("start_ns"):
                    ok_to_start.append((a["start_ns"] - s.ok_ns) / 1e6)
                if a.get("first_frame_ns"):
                    ok_to_first_frame.append((a["first_frame_ns"] - s.ok_ns) / 1e6)
        invites = sorted(s.invite_ns for s in sipp.values() if s.invite_ns)
        span = (invites[-1] - invites[0]) / 1e9 if len(invites) > 1 else 0.0
        return {
            "rate_target": o.setup_rate,
            "seconds": o.setup_seconds,
            "call_seconds": o.setup_call_seconds,
            "calls": total,
            "placing_seconds": round(placing_s, 2),
            "invites_seen_by_sipp": len(invites),
            "invite_rate_achieved": round((len(invites) - 1) / span, 2) if span > 0 else None,
            "invite_span_seconds": round(span, 2),
            "max_concurrent_at_carrier": analysis.max_concurrent(sipp.values()),
            "succeeded": ok,
            "success_ratio": round(ok / total, 5),
            "failures": failures,
            "post_response_ms": analysis.percentiles(post_response),
            "post_to_invite_ms": analysis.percentiles(post_to_invite),
            "ok_to_agent_start_ms": analysis.percentiles(ok_to_start),
            "ok_to_first_caller_frame_at_agent_ms": analysis.percentiles(ok_to_first_frame),
            "usage_while_placing": usage,
            "profile_last_seconds_of_placing": prof,
            "left_unfinished": sum(1 for p in created if (p.view or {}).get("status") not in FINAL),
            "gateway_calls": analysis.aggregate_calls([p.view for p in created if p.view]),
        }

    def stop_sipp_for_logs(self) -> None:
        proc = self.procs.pop("sipp", None)
        if proc is not None:
            proc.stop()

    # ------------------------------------------------------------------ whole run

    async def run(self) -> dict[str, Any]:
        o = self.opts
        self.result = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()},
            "machine": procstat.machine_info(REPO),
        }
        log(f"workdir {self.work}")
        if o.wait_quiet > 0:
            self.result["machine_before"] = await wait_quiet(o.wait_quiet)
        self.start_agent()
        self.start_relay()
        self.start_sipp(0)
        log(f"gateway on http://{LOOPBACK}:{self.http_port}, SIP {self.sip_port}, RTP {self.rtp_min}+; "
            f"SIPp {self.sipp_port} (echo {self.sipp_media}), relay {self.relay_port}, agent {self.agent_port}")
        self.apis = [
            httpx.AsyncClient(
                base_url=f"http://{LOOPBACK}:{port}",
                headers={"X-API-Key": API_KEY},
                timeout=httpx.Timeout(20.0),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
            for port in self.http_ports
        ]
        try:
            phases: list[dict[str, Any]] = []
            if o.baseline_calls > 0 and o.baseline_seconds > 0:
                self.start_gateway("baseline")
                self.result["idle"] = await self.idle()
                phases.append(await self.held_phase("baseline", o.baseline_calls, o.baseline_seconds,
                                                    o.baseline_calls, profile=False))
            for n in o.steps:
                self.start_gateway(f"step-{n}")
                await self.idle()
                phases.append(await self.held_phase(f"step-{n}", n, o.hold_seconds, o.probe_calls, profile=True))
            if o.soak_minutes > 0 and o.soak_calls > 0:
                self.start_gateway("soak")
                await self.idle()
                self.result["soak"] = await self.soak()
            if o.setup_seconds > 0 and o.setup_rate > 0:
                self.start_gateway("setup")
                await self.idle()
                self.result["setup"] = await self.setup_rate()
        finally:
            for api in self.apis:
                await api.aclose()
            self.stop_all()
        self.result["phases"] = self.analyse(phases)
        self.result["targets"] = evaluate_targets(self.result)
        self.result["relay_counts"] = _json_or_none(self.work / "relay.bin.json")
        self.result["gateway_log"] = analysis.gateway_log_summary(self.gateway_logs, self.spans)
        self.result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.result["duration_s"] = round(time.time() - self.started_wall, 1)
        return self.result

    def analyse(self, phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        relay = analysis.read_relay(self.work / "relay.bin")
        sipp = analysis.read_sipp_log(self.sipp_logs)
        agent_calls = {c.get("to"): c for c in analysis.read_agent_calls(self.work / "agent" / "calls.jsonl")}
        arrivals = analysis.read_arrivals(self.work / "agent" / "arrivals.bin")
        for phase in phases:
            start, end = phase.pop("window_ns")
            probes = phase.pop("probes")
            phase["media"] = analysis.analyse_window(
                probes=probes, window=(start, end), relay=relay, sipp=sipp, agent_calls=agent_calls,
                arrivals=arrivals, marker_period_ms=self.opts.marker_period_ms,
            )
        base = next((p for p in phases if p["name"] == "baseline"), None)
        if base is not None:
            for phase in phases:
                for key in ("outbound_agent_to_rtp_ms", "inbound_rtp_to_agent_ms"):
                    b = base["media"][key].get("p50")
                    cur = phase["media"][key]
                    cur["over_baseline_p50"] = {
                        q: round(cur[q] - b, 2) if cur.get(q) is not None and b is not None else None
                        for q in ("p50", "p99", "p99_9")
                    }
                    samples = phase["media"].get("samples_ms", {}).get(key)
                    if samples and b is not None:
                        late = sum(1 for v in samples if v > b + 10)
                        cur["share_over_baseline_plus_10ms"] = round(late / len(samples), 5)
            for phase in phases:
                phase["media"].pop("samples_ms", None)
        return phases

    def cleanup(self) -> None:
        self.stop_all()
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        if self.opts.keep_workdir:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


async def wait_quiet(limit: float, threshold: float = 0.15) -> dict[str, Any]:
    """Wait (up to `limit` s) for 5 s in which the machine is less than `threshold` busy."""
    deadline = time.monotonic() + limit
    while True:
        before = procstat.machine_sample()
        await asyncio.sleep(5)
        usage = procstat.machine_usage(before, procstat.machine_sample())
        busy = usage.get("busy_share") or 0.0
        if busy < threshold or time.monotonic() >= deadline:
            log(f"machine {busy * 100:.0f}% busy before the run" + ("" if busy < threshold else " (gave up waiting)"))
            return {"busy_share": busy, "quiet": busy < threshold}
        log(f"machine {busy * 100:.0f}% busy: waiting for it to quiet down")


def _json_or_none(path: Path) -> Any:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


def playout_sum(texts: Sequence[str | None]) -> dict[str, float] | None:
    """``orbit_playout_frames_total`` summed over the gateway processes, by outcome."""
    out: dict[str, float] = {}
    for text in texts:
        if text is None:
            return None
        for line in text.splitlines():
            if line.startswith("orbit_playout_frames_total{"):
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def playout_delta(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, int] | None:
    """What the gateways' jitter buffers did during the hold window only (ramp and hang-up excluded)."""
    if not before or not after:
        return None
    return {k: int(after[k] - before.get(k, 0.0)) for k in after}


def clock_lateness(before: str | None, after: str | None) -> dict[str, Any] | None:
    """The gateway's own media-clock lateness over the window, from GET /metrics (if it serves it)."""
    if not before or not after:
        return None

    def buckets(text: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for line in text.splitlines():
            if line.startswith("orbit_media_clock_lateness_ms_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
        return out

    b, a = buckets(before), buckets(after)
    if not a:
        return None
    delta = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return {"ticks": 0}

    def q(p: float) -> float | None:
        for le, count in delta:
            if count >= p * total:
                return le
        return None

    return {"ticks": int(total), "p50_le": q(0.5), "p99_le": q(0.99), "p99_9_le": q(0.999),
            "buckets": {str(le): int(c) for le, c in delta}}


def evaluate_targets(result: dict[str, Any]) -> dict[str, Any]:
    """This round's targets, each with the measured figure and met / not met / not measured."""
    phases = {p["name"]: p for p in result.get("phases", [])}
    steps = sorted((p for p in phases.values() if p["name"].startswith("step-")), key=lambda p: p["calls"])
    step = phases.get("step-200") or (steps[-1] if steps else None)
    out: dict[str, Any] = {}

    def verdict(value: float | None, limit: float, lower_is_better: bool = True) -> str:
        if value is None:
            return "not measured"
        return "met" if (value <= limit if lower_is_better else value >= limit) else "not met"

    if step is not None:
        calls = step["gateway_calls"]
        media_sum = calls.get("media_stats_sum", {})
        agent_sum = calls.get("agent_summary_sum", {})
        dropped = None
        if calls.get("media_stats_calls"):
            dropped = (media_sum.get("dropped", 0) + media_sum.get("late", 0)
                       + agent_sum.get("caller_audio_dropped_ms", 0) / 20)
        m = step["media"]
        short = step["established"] < step["calls"]
        note = f"only {step['established']} of {step['calls']} calls could be established" if short else None
        out["step"] = {"name": step["name"], "established": step["established"], "of": step["calls"], "note": note}

        def judged(value: float | None, limit: float) -> str:
            v = verdict(value, limit)
            return "not met" if short and v != "not measured" else v

        # The target is about the calls being up together: frames dropped in the hold window.
        # Over the calls' whole life (ramp at --ramp-rate, then all hung up at once) is given beside it.
        window = step.get("playout_window")
        in_window = window["dropped"] + window["late"] if window else None
        out["frames_dropped_by_gateway"] = {"value": in_window, "played": window["played"] if window else None,
                                            "concealed": window["concealed"] if window else None,
                                            "whole_life": dropped, "whole_life_concealed": media_sum.get("concealed"),
                                            "target": 0, "verdict": judged(in_window, 0)}
        for key, label in (("outbound_agent_to_rtp_ms", "latency_agent_to_rtp_p99_ms"),
                           ("inbound_rtp_to_agent_ms", "latency_rtp_to_agent_p99_ms")):
            raw = m[key].get("p99")
            over = m[key].get("over_baseline_p50", {}).get("p99")
            out[label] = {"value": raw, "over_baseline": over, "target": 10,
                          "verdict": judged(raw, 10), "verdict_over_baseline": judged(over, 10)}
        pace = m["rtp_from_gateway"]["grid_deviation_ms"].get("p99")
        out["pacing_p99_ms"] = {"value": pace, "target": 5, "verdict": judged(pace, 5)}
        cpu = step.get("gateway_cpu_pct_per_call")
        out["cpu_pct_per_call"] = {"value": cpu, "target": 0.5, "verdict": judged(cpu, 0.5)}
        full = [p for p in steps if p["established"] >= p["calls"]]
        if full:
            best = full[-1]
            out["largest_step_fully_established"] = {
                "name": best["name"], "cpu_pct_per_call": best.get("gateway_cpu_pct_per_call"),
                "gateway_cpu_core": best["usage"]["cpu"].get("gateway", {}).get("cpu_core")}
    setup = result.get("setup")
    if setup:
        achieved = setup.get("invite_rate_achieved")
        sustained = achieved is not None and achieved >= 0.95 * setup["rate_target"]
        ok = setup["success_ratio"] >= 0.999
        out["setup"] = {"success_ratio": setup["success_ratio"], "rate": setup["rate_target"],
                        "invite_rate_achieved": achieved, "seconds": setup["seconds"],
                        "post_to_invite_p99_ms": setup["post_to_invite_ms"].get("p99"),
                        "target": "20/s for 60 s, >= 99.9 % success",
                        "verdict": "met" if ok and sustained else "not met"}
    soak = result.get("soak")
    if soak:
        trend = soak["rss_trend"]
        slope = trend.get("slope_mb_per_min")
        out["soak_rss"] = {"slope_mb_per_min": slope, "second_half_slope_mb_per_min": trend.get("second_half_slope_mb_per_min"),
                           "growth_mb": trend.get("growth_mb"), "minutes": soak["minutes"],
                           "target": "flat (slope <= 0.5 MB/min)", "verdict": verdict(slope, 0.5)}
    return out


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Options()
    p.add_argument("--steps", default=",".join(map(str, d.steps)), help="concurrent calls per step (default %(default)s)")
    p.add_argument("--hold-seconds", type=float, default=d.hold_seconds, help="measured time per step")
    p.add_argument("--gateways", type=int, default=d.gateways,
                   help="gateway processes side by side (one per core), calls dealt round-robin")
    p.add_argument("--postgres", action="store_true",
                   help="every gateway on one PostgreSQL database (a cluster), instead of a SQLite file each")
    p.add_argument("--settle-seconds", type=float, default=d.settle_seconds)
    p.add_argument("--ramp-rate", type=float, default=d.ramp_rate, help="calls/s while filling a step")
    p.add_argument("--probe-calls", type=int, default=d.probe_calls, help="calls per step whose RTP goes through the relay")
    p.add_argument("--marker-period-ms", type=int, default=d.marker_period_ms)
    p.add_argument("--baseline-seconds", type=float, default=d.baseline_seconds)
    p.add_argument("--setup-rate", type=float, default=d.setup_rate, help="calls/s of the set-up test")
    p.add_argument("--setup-seconds", type=float, default=d.setup_seconds, help="0 skips the set-up test")
    p.add_argument("--setup-call-seconds", type=float, default=d.setup_call_seconds)
    p.add_argument("--soak-minutes", type=float, default=d.soak_minutes, help="0 skips the soak")
    p.add_argument("--soak-calls", type=int, default=d.soak_calls)
    p.add_argument("--soak-call-seconds", type=float, default=d.soak_call_seconds)
    p.add_argument("--profile-seconds", type=float, default=d.profile_seconds, help="py-spy per step; 0 = none")
    p.add_argument("--gateway-loop", choices=["uvloop", "asyncio"], default=d.gateway_loop,
                   help="uvloop: orbit-gateway serve as shipped; asyncio: the same app on the stock loop")
    p.add_argument("--wait-quiet", type=float, default=d.wait_quiet, metavar="SECONDS",
                   help="first wait up to this long for the machine to be idle (other jobs skew results)")
    p.add_argument("--quiet-retries", type=int, default=d.quiet_retries,
                   help="measure a step's window again (up to this many times) when other processes were busy")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/<timestamp>.json)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the logs and raw records")
    p.add_argument("--smoke", action="store_true", help="3 calls for a few seconds, no soak/profile (tests)")
    a = p.parse_args(argv)
    opts = Options(
        steps=[int(s) for s in str(a.steps).split(",") if s.strip()],
        hold_seconds=a.hold_seconds, gateways=a.gateways, postgres=a.postgres, settle_seconds=a.settle_seconds, ramp_rate=a.ramp_rate,
        probe_calls=a.probe_calls, marker_period_ms=a.marker_period_ms, baseline_seconds=a.baseline_seconds,
        setup_rate=a.setup_rate, setup_seconds=a.setup_seconds, setup_call_seconds=a.setup_call_seconds,
        soak_minutes=a.soak_minutes, soak_calls=a.soak_calls, soak_call_seconds=a.soak_call_seconds,
        profile_seconds=a.profile_seconds, gateway_loop=a.gateway_loop, wait_quiet=a.wait_quiet, quiet_retries=a.quiet_retries, out=a.out, keep_workdir=a.keep_workdir, smoke=a.smoke,
    )
    if a.smoke:
        opts.steps = [3]
        opts.hold_seconds = 4.0
        opts.settle_seconds = 1.0
        opts.probe_calls = 3
        opts.baseline_calls = 0
        opts.baseline_seconds = 0.0
        opts.setup_rate = 3.0
        opts.setup_seconds = 1.0
        opts.setup_call_seconds = 2.0
        opts.soak_minutes = 0.0
        opts.profile_seconds = 0.0
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    bench = Bench(opts)

    async def runner() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await bench.run()

    try:
        result = asyncio.run(runner())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted: stopping everything")
        bench.cleanup()
        return 130
    except Exception:
        for name, proc in bench.procs.items():
            sys.stderr.write(f"--- {name} log (tail) ---\n{proc.tail()}\n")
        bench.cleanup()
        raise
    out = bench.out_path
    out.parent.mkdir(parents=True, exist_ok=True)
    result["workdir"] = str(bench.work) if opts.keep_workdir else None
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    bench.cleanup()
    from bench.report import summary_lines

    for line in summary_lines(result):
        print(line)
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
