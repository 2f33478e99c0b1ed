"""Three gateway nodes (processes) on one real PostgreSQL, SIPp as the carrier, a real webhook
receiver: any node serves any request, trunk limits hold across the nodes, and a node killed
with live calls is taken over by a peer."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.interop.conftest import KEY, gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.peers import free_port, free_udp_block
from tests.support.peers.sipp import SippUas
from tests.support.postgres import PostgresServer
from tests.support.receiver import WebhookReceiver

pytestmark = [pytest.mark.interop, pytest.mark.postgres]
H = {"X-API-Key": KEY}
LEASE = 3.0




class Cluster:
    def __init__(self, tmp: Path, db_url: str, trunk: dict[str, Any], receiver: WebhookReceiver) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.trunk = trunk
        self.receiver = receiver
        self.nodes: list[GatewayProcess] = []
        self.configs: list[dict[str, Any]] = []
        self.clients: list[httpx.AsyncClient] = []

    def config(self, i: int) -> dict[str, Any]:
        config = gateway_config(
            self.tmp / f"n{i}", self.trunk, webhooks={"allow_private_targets": True, "lease_seconds": 2},
            logging={"level": "INFO"},
        )
        rtp = free_udp_block(40, align=2)
        config["database"]["url"] = self.db_url
        config["node_id"] = f"node-{i}"
        config["sip"]["port"] = free_port(udp=True, tcp=True)
        config["rtp"] = {"port_min": rtp, "port_max": rtp + 39}
        config["cluster"] = {"lease_seconds": LEASE, "renew_seconds": 1.0, "command_poll_seconds": 0.5}
        config["http"] = {"signing_secret": "cluster-test-secret"}
        config["accounts"][0]["webhook_url"] = self.receiver.url
        return config

    async def start(self, count: int) -> None:
        for i in range(count):
            (self.tmp / f"n{i}").mkdir(parents=True, exist_ok=True)
            config = self.config(i)
            self.configs.append(config)
            self.nodes.append(await asyncio.to_thread(GatewayProcess(config, self.tmp / f"n{i}").start))
            self.clients.append(httpx.AsyncClient(base_url=self.nodes[i].base_url, timeout=60))

    async def restart(self, i: int) -> None:
        await self.clients[i].aclose()
        self.nodes[i] = await asyncio.to_thread(GatewayProcess(self.configs[i], self.tmp / f"n{i}").start)
        self.clients[i] = httpx.AsyncClient(base_url=self.nodes[i].base_url, timeout=60)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for node in self.nodes:
            await asyncio.to_thread(node.stop)

    async def create(self, node: int, **body: Any) -> dict[str, Any]:
        body.setdefault("to", "+14155552671")
        r = await self.clients[node].post("/v1/voice/calls", json=body, headers=H)
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])

    async def get(self, node: int, call_id: str) -> dict[str, Any]:
        r = await self.clients[node].get(f"/v1/voice/calls/{call_id}", headers=H)
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    async def wait(self, node: int, call_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        call: dict[str, Any] = {}
        while time.monotonic() < deadline:
            call = await self.get(node, call_id)
            if pred(call):
                return call
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition not met: {call}")

    def finals(self, call_id: str) -> list[dict[str, Any]]:
        return [
            r.json for r in self.receiver.received
            if r.json["data"]["id"] == call_id and r.json["type"] in ("call.completed", "call.failed")
        ]

    async def wait_finals(self, ids: list[str], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(self.finals(i) for i in ids):
            await asyncio.sleep(0.1)


@asynccontextmanager
async def cluster(tmp: Path, postgres: PostgresServer, trunk: dict[str, Any], nodes: int = 3) -> AsyncIterator[Cluster]:
    receiver = WebhookReceiver()
    await receiver.start()
    c = Cluster(tmp, await postgres.fresh_database(), trunk, receiver)
    try:
        await c.start(nodes)
        yield c
    finally:
        await c.close()
        await receiver.stop()


async def test_hangup_through_a_node_that_does_not_carry_the_call(tmp_path: Path, postgres: PostgresServer) -> None:
    with SippUas("uas_answer_wait_bye", calls=3, rtp_echo=True, timeout=60) as uas:
        async with cluster(tmp_path, postgres, {"uri": f"sip:{uas.host}:{uas.port}"}) as c:
            calls = [await c.create(i) for i in range(3)]  # node i carries call i
            for i, call in enumerate(calls):
                await c.wait(i, call["id"], lambda x: x["status"] == "in_progress")
            for i, call in enumerate(calls):
                other = (i + 1) % 3
                started = time.monotonic()
                r = await c.clients[other].post(f"/v1/voice/calls/{call['id']}/hangup", headers=H)
                assert r.status_code == 200, r.text
                # Answered once the carrying node has ended the call, exactly as on one node.
                assert r.json()["data"]["status"] == "completed", r.text
                assert time.monotonic() - started < 10
                done = await c.get(other, call["id"])
                assert (done["hangup_cause"], done["hangup_side"]) == ("api_hangup", "local")
            await c.wait_finals([x["id"] for x in calls])
            finals = {x["id"]: c.finals(x["id"]) for x in calls}
        result = await asyncio.to_thread(uas.wait, 20)
    assert result.ok, result.describe()
    invites = {m.call_id for m in result.received("INVITE")}
    byes = [m.call_id for m in result.received("BYE")]
    assert len(invites) == 3 and sorted(byes) == sorted(invites)  # one BYE per call
    for call_id, mine in finals.items():
        assert [m["type"] for m in mine] == ["call.completed"], (call_id, mine)


async def test_a_trunk_limit_holds_across_nodes(tmp_path: Path, postgres: PostgresServer) -> None:
    with SippUas("uas_ring_until_cancel", calls=100, timeout=120) as uas:
        trunk = {"uri": f"sip:{uas.host}:{uas.port}", "max_concurrent": 4, "queue_size": 20, "calls_per_second": 50}
        async with cluster(tmp_path, postgres, trunk) as c:
            calls = [await c.create(i % 3) for i in range(12)]  # round-robin over the nodes
            ringing = lambda: asyncio.gather(*(c.get(0, x["id"]) for x in calls))  # noqa: E731
            deadline = time.monotonic() + 15
            states: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                states = list(await ringing())
                if sum(1 for s in states if s["status"] == "ringing") == 4:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # give a wrong fifth INVITE time to show up
            states = list(await ringing())
            assert sum(1 for s in states if s["status"] == "ringing") == 4, [s["status"] for s in states]
            assert sum(1 for s in states if s["status"] == "initiating") == 8
            # A freed slot goes to a waiting call, whichever node queued it.
            first = next(s for s in states if s["status"] == "ringing")
            r = await c.clients[1].post(f"/v1/voice/calls/{first['id']}/hangup", headers=H)
            assert r.json()["data"]["status"] == "cancelled"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                states = list(await ringing())
                if sum(1 for s in states if s["status"] == "ringing") == 4:
                    break
                await asyncio.sleep(0.1)
            assert sum(1 for s in states if s["status"] == "ringing") == 4
            # The queued calls first, so no freed slot sends another INVITE.
            for status in ("initiating", "ringing"):
                for s in states:
                    if s["status"] == status:
                        await c.clients[2].post(f"/v1/voice/calls/{s['id']}/hangup", headers=H)
        result = uas.stop()
    assert result is not None
    # Never more than 4 dialogs open at the carrier at once.
    open_dialogs, peak = set(), 0
    for m in (m for m in result.messages if m.direction == "received"):  # in the order SIPp logged them
        if m.method == "INVITE":
            open_dialogs.add(m.call_id)
        elif m.method == "CANCEL":
            open_dialogs.discard(m.call_id)
        peak = max(peak, len(open_dialogs))
    assert peak == 4
    assert len({m.call_id for m in result.received("INVITE")}) == 5


async def test_a_killed_node_is_taken_over_by_a_peer(tmp_path: Path, postgres: PostgresServer) -> None:
    with SippUas("uas_answer_wait_bye", calls=4, rtp_echo=True, timeout=90) as uas:
        trunk = {"uri": f"sip:{uas.host}:{uas.port}", "max_concurrent": 3, "queue_size": 0}
        async with cluster(tmp_path, postgres, trunk) as c:
            lost = [await c.create(1), await c.create(1)]
            kept = await c.create(0)
            for call in [*lost, kept]:
                await c.wait(0, call["id"], lambda x: x["status"] == "in_progress")
            r = await c.clients[2].post("/v1/voice/calls", json={"to": "+14155552671"}, headers=H)
            assert r.status_code == 429  # the trunk is full across the cluster
            await asyncio.sleep(1.5)  # at least one lease renewal with the calls up
            await asyncio.to_thread(c.nodes[1].stop, signal.SIGKILL)
            killed_at = time.time()
            settled = [
                await c.wait(0, x["id"], lambda x: x["status"] == "failed", timeout=LEASE + 5) for x in lost
            ]
            took = time.time() - killed_at
            await c.wait_finals([x["id"] for x in lost])
            assert all(s["hangup_cause"] == "node_lost" for s in settled), settled
            # ended_at is the lost node's last renewal, not the moment the peer noticed.
            for s in settled:
                ended = datetime.fromisoformat(s["ended_at"].replace("Z", "+00:00")).timestamp()
                assert killed_at - 2.5 <= ended <= killed_at + 1.0, (ended, killed_at)
            # The slots are free again: a new call goes through.
            fresh = await c.create(2)
            await c.wait(2, fresh["id"], lambda x: x["status"] == "in_progress")
            # The lost node comes back under the same id: it settles nothing again.
            webhooks_before = len(c.receiver.received)
            await c.restart(1)
            await asyncio.sleep(2.0)
            again = [await c.get(1, x["id"]) for x in lost]
            assert [a["ended_at"] for a in again] == [s["ended_at"] for s in settled]
            assert all(c.finals(x["id"]) == c.finals(x["id"])[:1] for x in lost)
            for call in (kept, fresh):
                await c.clients[1].post(f"/v1/voice/calls/{call['id']}/hangup", headers=H)
            await c.wait_finals([kept["id"], fresh["id"]])
            log = "\n".join(n.log() for n in c.nodes)
            mine = {x["id"]: c.finals(x["id"]) for x in lost}
        result = await asyncio.to_thread(uas.wait, 30)
    assert took <= LEASE + 5, took
    for call_id, finals in mine.items():
        assert [m["type"] for m in finals] == ["call.failed"], (call_id, finals)
        assert finals[0]["data"]["hangup_cause"] == "node_lost"
    assert len(c.receiver.received) >= webhooks_before
    # SIPp's scenario passed for every call: the lost node's two calls got their BYE from a peer.
    assert result.ok, result.describe() + log[-3000:]
    assert len({m.call_id for m in result.received("BYE")}) == 4


async def test_every_node_answers_get_and_list_the_same(tmp_path: Path, postgres: PostgresServer) -> None:
    with SippUas("uas_busy", calls=6, timeout=60) as uas:
        async with cluster(tmp_path, postgres, {"uri": f"sip:{uas.host}:{uas.port}"}) as c:
            calls = [await c.create(i % 3) for i in range(6)]
            for call in calls:
                await c.wait(0, call["id"], lambda x: x["status"] == "busy")
            for call in calls:
                views = [await c.get(i, call["id"]) for i in range(3)]
                assert views[0] == views[1] == views[2]
            pages: list[list[list[dict[str, Any]]]] = []
            for i in range(3):
                cursor, seen = None, []
                while True:
                    params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
                    body = (await c.clients[i].get("/v1/voice/calls", params=params, headers=H)).json()
                    seen.append(body["data"])
                    cursor = body["meta"]["pagination"]["cursor"]
                    if cursor is None:
                        break
                    # A cursor from one node works on the next.
                    i = (i + 1) % 3
                pages.append(seen)
            assert pages[0] == pages[1] == pages[2]
            assert sum(len(p) for p in pages[0]) == 6
        await asyncio.to_thread(uas.wait, 15)


async def test_nodes_on_one_machine_share_one_http_port(tmp_path: Path, postgres: PostgresServer) -> None:
    """One process per core: each node its own node_id, SIP port and RTP range, one HTTP port
    for all of them (SO_REUSEPORT): the kernel spreads the clients' connections."""
    db_url = await postgres.fresh_database()
    port = free_port()
    receiver = WebhookReceiver()
    nodes: list[GatewayProcess] = []
    with SippUas("uas_busy", calls=20, timeout=60) as uas:
        c = Cluster(tmp_path, db_url, {"uri": f"sip:{uas.host}:{uas.port}"}, receiver)
        try:
            for i in range(2):
                (tmp_path / f"n{i}").mkdir()
                config = c.config(i)
                config["http"]["reuse_port"] = True
                nodes.append(await asyncio.to_thread(GatewayProcess(config, tmp_path / f"n{i}", port=port).start))
            # /readyz on the shared port may be answered by the first node: wait for both leases.
            conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    up = await conn.fetch("SELECT node_id FROM gateway_nodes WHERE state = 'up'")
                    if {r["node_id"] for r in up} == {"node-0", "node-1"}:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await conn.close()
            created = []
            for _ in range(20):
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:  # a new connection
                    r = await client.post("/v1/voice/calls", json={"to": "+14155552671"}, headers=H)
                    assert r.status_code == 201, r.text
                    created.append(r.json()["data"]["id"])
            conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                owners = await conn.fetch("SELECT node_id, count(*) AS n FROM calls GROUP BY node_id")
            finally:
                await conn.close()
            cli = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "orbit-gateway"), "nodes", "--config", str(nodes[0].config_path),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path / "n0",
            )
            listing = (await cli.communicate())[0].decode()
        finally:
            for node in nodes:
                await asyncio.to_thread(node.stop)
        await asyncio.to_thread(uas.wait, 20)
    assert {row["node_id"] for row in owners} == {"node-0", "node-1"}, owners
    assert sum(row["n"] for row in owners) == 20
    lines = listing.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "LEASE"], listing
    assert {line.split()[0] for line in lines[1:]} == {"node-0", "node-1"}, listing
