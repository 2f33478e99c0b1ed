"""SIP over TCP cannot starve the node: a real gateway process with a file descriptor limit of
4096, and 6000 idle TCP connections from 120 loopback addresses (127.0.0.2-121; Linux routes all
of 127/8 to lo) held against its SIP port, sending nothing but a CRLF keep-alive. /readyz must keep answering and a call placed through
the API to SIPp (the carrier, over TCP) must be answered and complete.

Without the connection limits the gateway accepts until its descriptors run out, and then
neither the API nor the call can open a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import select
import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.conftest import KEY, gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.peers.sipp import SippUas

pytestmark = pytest.mark.interop
H = {"X-API-Key": KEY}

GATEWAY_NOFILE = 4096
SOURCES = [f"127.0.0.{n}" for n in range(2, 122)]
PER_SOURCE = 50  # more than tcp_max_connections_per_source (32)
FLOOD = len(SOURCES) * PER_SOURCE  # more than the gateway's descriptors, and than tcp_max_connections (1024)


def _raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))  # the tests run as root


def _flood(port: int) -> list[socket.socket]:
    """Open FLOOD connections without waiting for each (a SYN flood of real handshakes)."""
    socks = []
    for source in SOURCES:
        for _ in range(PER_SOURCE):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((source, 0))
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
    return socks


def _wait_connected(socks: list[socket.socket], timeout: float) -> int:
    """Wait until every connect has finished one way or the other, and send a CRLF keep-alive
    on each; returns how many connects still pend.

    The keep-alive matters: while the gateway's accept queue is full the kernel drops the last
    ACK of a handshake (SYN cookies) and only the client believes it is connected; the data
    segment, retransmitted until acknowledged, completes the handshake later. Handshakes the
    kernel could not queue at all are retried by the client after a second or more, so this can
    take a few seconds; a gateway that stopped accepting leaves some pending for good.
    """
    poller = select.poll()
    pending = {s.fileno(): s for s in socks}
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            poller.unregister(fd)
            with contextlib.suppress(OSError):  # refused already: reset or closed
                pending.pop(fd).send(b"\r\n\r\n")
    return len(pending)


def _sip_tcp_samples(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("orbit_sip_tcp_connections"):
                out[(s.name, next(iter(s.labels.values()), ""))] = s.value
    return out


async def test_idle_tcp_flood_does_not_starve_the_api_or_calls(tmp_path: Path) -> None:
    _raise_own_fd_limit(FLOOD + 1024)
    with SippUas("uas_answer_wait_bye", transport="tcp", timeout=60) as uas:
        trunk = {"uri": f"sip:{uas.host}:{uas.port};transport=tcp"}
        config = gateway_config(tmp_path, trunk, logging={"level": "INFO"})
        gw = await asyncio.to_thread(GatewayProcess(config, tmp_path, nofile=GATEWAY_NOFILE).start)
        socks: list[socket.socket] = []
        try:
            sip_port = _sip_port(gw)
            socks = await asyncio.to_thread(_flood, sip_port)
            pending = await asyncio.to_thread(_wait_connected, socks, 20.0)
            async with httpx.AsyncClient(base_url=gw.base_url, timeout=5) as client:
                try:
                    ready = await client.get("/readyz")
                except httpx.HTTPError as exc:
                    pytest.fail(f"/readyz did not answer during the flood: {exc!r}")
                assert ready.status_code == 200, f"{ready.text} ({pending} connects still pending)"
                created = await client.post("/v1/voice/calls", headers=H, json={"to": "+14155552671"})
                assert created.status_code == 201, created.text
                call_id = created.json()["data"]["id"]
                status = await _wait_status(client, call_id, "in_progress")
                assert status == "in_progress"
                hung = await client.post(f"/v1/voice/calls/{call_id}/hangup", headers=H)
                assert hung.json()["data"]["status"] == "completed", hung.text
                assert (await client.get("/readyz")).status_code == 200
                samples = _sip_tcp_samples((await client.get("/metrics")).text)
                assert gw.proc is not None
                descriptors = len(os.listdir(f"/proc/{gw.proc.pid}/fd"))
        finally:
            for s in socks:
                s.close()
            await asyncio.to_thread(gw.stop)
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()  # answered, ACKed, ended by our BYE
    refused = {
        reason: samples[("orbit_sip_tcp_connections_refused_total", reason)]
        for reason in ("source_limit", "total_limit", "not_trunk")
    }
    open_inbound = samples[("orbit_sip_tcp_connections", "inbound")]
    assert open_inbound <= 1024 and refused["not_trunk"] == 0
    assert refused["source_limit"] > 0 and refused["total_limit"] > 0, refused
    # Some of the flood may still be on its way through the kernel when the metrics are read;
    # whatever reached the gateway was refused at once or kept within the limits.
    assert 1024 < _handled(samples) <= FLOOD - pending, (refused, open_inbound, pending)
    # The node kept its descriptors: at most the connection limit and what it needs besides.
    assert descriptors < 1024 + 300, descriptors
    # Thousands of refusals, a handful of log lines: one per reason every 10 s at most.
    lines = [json.loads(line) for line in gw.log().splitlines() if line.startswith("{")]
    logged = Counter(r["reason"] for r in lines if r["msg"] == "sip tcp connection refused")
    assert set(logged) == {"source_limit", "total_limit"}
    assert all(n <= 4 for n in logged.values()), logged


def _handled(samples: dict[tuple[str, str], float]) -> float:
    """Inbound connections the gateway refused, still holds, or closed for want of SIP."""
    return (
        sum(v for (name, _), v in samples.items() if name == "orbit_sip_tcp_connections_refused_total")
        + samples[("orbit_sip_tcp_connections", "inbound")]
        + samples[("orbit_sip_tcp_connections_closed_total", "no_sip")]
    )


def _sip_port(gw: GatewayProcess) -> int:
    """The SIP port the gateway bound (the test configuration says 0: any), from its start-up log."""
    for line in gw.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "sip listening":
                return int(record["tcp"])
    raise AssertionError("the gateway did not log its SIP port")


async def _wait_status(client: httpx.AsyncClient, call_id: str, wanted: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = (await client.get(f"/v1/voice/calls/{call_id}", headers=H)).json()["data"]["status"]
        if status == wanted or status in ("failed", "completed", "busy", "no_answer", "cancelled"):
            return status
        await asyncio.sleep(0.05)
    return status
