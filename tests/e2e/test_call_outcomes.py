"""Call outcomes that involve the agent, through the REST API with real peers."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.interop.conftest import gateway_config, running_gateway
from tests.support.agents import AgentServer, free_port
from tests.support.peers.sipp import SippUas
from tests.support.processes import ScriptProcess

pytestmark = pytest.mark.interop


def _trunk(uas: SippUas) -> dict[str, object]:
    return {"uri": f"sip:{uas.host}:{uas.port};transport={uas.transport}"}


async def test_max_duration_stops_agent_then_sends_bye(tmp_path: Path) -> None:
    with SippUas("uas_answer_wait_bye", rtp_echo=True) as uas:
        async with AgentServer(echo=True) as server:
            config = gateway_config(tmp_path, _trunk(uas))
            config["agents"] = [{"id": "agt", "url": server.url, "stop_grace_seconds": 0.5}]
            async with running_gateway(config) as gw:
                call = await gw.create(agent_id="agt", max_duration=2)
                peer = await server.accept(timeout=10)
                done = await gw.wait_status(call["id"], "completed", "failed", timeout=15)
                stop = await peer.recv_json(timeout=5, type="stop")
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert (done["status"], done["hangup_cause"], done["hangup_side"]) == ("completed", "max_duration", "local")
    assert stop["reason"] == "max_duration"
    assert 2 <= done["duration_seconds"] <= 5
    # The agent heard stop before the callee heard BYE: SIPp logs the BYE's arrival time.
    stamp = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", result.received("BYE")[0].timestamp)
    assert stamp is not None
    bye_at = datetime.strptime(stamp.group(0), "%Y-%m-%d %H:%M:%S.%f").timestamp()  # SIPp logs local time
    stop_at = peer.stop_received_at
    assert stop_at is not None and stop_at < bye_at, (stop_at, bye_at)


async def test_unreachable_agent_fails_the_call(tmp_path: Path) -> None:
    with SippUas("uas_answer_wait_bye") as uas:
        config = gateway_config(tmp_path, _trunk(uas))
        config["agents"] = [{"id": "agt", "url": f"ws://127.0.0.1:{free_port()}/", "connect_timeout_seconds": 1}]
        async with running_gateway(config) as gw:
            call = await gw.create(agent_id="agt")
            done = await gw.wait_status(call["id"], "failed", "completed", timeout=15)
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()  # answered, then BYE from us
    assert (done["status"], done["hangup_cause"]) == ("failed", "agent_unavailable")
    assert done["answered_at"] is not None


async def test_remote_hangup_stops_agent_at_once(tmp_path: Path) -> None:
    with SippUas("uas_answer_remote_bye", variables={"pause_ms": 1500}) as uas:
        async with AgentServer(echo=True) as server:
            config = gateway_config(tmp_path, _trunk(uas))
            config["agents"] = [{"id": "agt", "url": server.url}]
            async with running_gateway(config) as gw:
                call = await gw.create(agent_id="agt")
                peer = await server.accept(timeout=10)
                stop = await peer.recv_json(timeout=10, type="stop")
                done = await gw.wait_status(call["id"], "completed", timeout=10)
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert stop["reason"] == "remote_hangup"
    assert done["hangup_cause"] == "remote_hangup"


async def test_twenty_concurrent_calls_with_agents_and_recording(tmp_path: Path) -> None:
    n = 20
    with SippUas("uas_answer_wait_bye", calls=n, rtp_echo=True, timeout=60) as uas:
        with ScriptProcess("examples/echo_agent.py") as agent:
            config = gateway_config(tmp_path, _trunk(uas) | {"calls_per_second": 50})
            config["agents"] = [{"id": "agt", "url": f"ws://127.0.0.1:{agent.port}/"}]
            async with running_gateway(config) as gw:
                calls = await asyncio.gather(*(gw.create(agent_id="agt", record=True) for _ in range(n)))
                await asyncio.gather(*(gw.wait_status(c["id"], "in_progress", timeout=20) for c in calls))
                await asyncio.sleep(2)
                hung = await asyncio.gather(*(gw.hangup(c["id"]) for c in calls))
                assert all(r.json()["data"]["status"] == "completed" for r in hung)
                deadline = time.monotonic() + 30
                finals = []
                while time.monotonic() < deadline:
                    finals = [await gw.get(c["id"]) for c in calls]
                    if all(f["recording_status"] in ("available", "failed") for f in finals):
                        break
                    await asyncio.sleep(0.2)
        result = await asyncio.to_thread(uas.wait, 30)
    assert result.ok, result.describe()
    assert result.successful_calls == n
    assert all(f["status"] == "completed" and f["hangup_cause"] == "api_hangup" for f in finals)
    assert all(f["recording_status"] == "available" and f["recording_url"] for f in finals)
    assert all(f["agent_summary"]["agent_audio_ms"] > 500 for f in finals)
    assert all(f["media_stats"]["packets_in"] > 50 for f in finals)
