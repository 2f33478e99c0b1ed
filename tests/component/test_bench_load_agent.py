"""The benchmark's load agent (bench/load_agent.py) serving the gateway's AgentBridge on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.load_agent import Agent
from media.agent.bridge import AgentBridge
from tests.component.test_agent_bridge import Calls
from tests.support.agents import MediaTick, agent_endpoint, tone
from tests.support.clock import wait_until


@pytest.fixture
async def load_agent(tmp_path: Path) -> AsyncIterator[tuple[Agent, str]]:
    agent = Agent(tmp_path, marker_period_ms=500)
    server = await asyncio.get_running_loop().create_server(agent.connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield agent, f"ws://127.0.0.1:{port}/agent"
    finally:
        server.close()
        await server.wait_closed()
        agent.calls_file.close()
        agent.arrivals_file.close()


async def test_it_echoes_caller_audio_one_frame_per_frame_and_closes_on_stop(
    load_agent: tuple[Agent, str], tmp_path: Path
) -> None:
    agent, url = load_agent
    calls = Calls()
    bridge = AgentBridge(
        agent_endpoint(url, sample_rate=16000),
        call_id="call_bench",
        account_id="acct_main",
        from_="+15551230000",
        to="+15557650000",
        metadata={"bench": {"index": 3}},
        on_hangup_request=calls.hangups.append,
        on_agent_lost=calls.lost.append,
    )
    await bridge.connect()
    bridge.start_media(time.monotonic())
    await wait_until(lambda: agent.started == 1)
    tick = MediaTick(bridge, lambda i: tone(700, 8000, 20, amplitude=8000, phase_samples=160 * i))
    for _ in range(50):
        tick.tick()
    # Its start frame stands in for the reply to the first caller frame: 50 in, 50 out.
    received = lambda: bridge.playout_queued_ms + bridge.summary()["agent_audio_ms"]  # noqa: E731
    await wait_until(lambda: agent.frames_in == 50 and received() == 50 * 20)
    assert agent.frames_out == 50 and agent.errors == 0
    await bridge.stop("api_hangup")
    await wait_until(lambda: agent.closed == 1)
    (record,) = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert record["call_id"] == "call_bench" and record["index"] == 3 and record["rate"] == 16000
    assert record["frames_in"] == 50 and record["stop_reason"] == "api_hangup"
    assert bridge.summary()["end_reason"] == "api_hangup" and calls.lost == []
