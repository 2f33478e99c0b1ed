"""The example agents run as documented and work with the bridge."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from media.agent.bridge import AgentBridge
from tests.component.test_agent_bridge import Calls
from tests.support.agents import MediaTick, agent_endpoint, dominant_hz, free_port, rms, tone
from tests.support.clock import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextlib.asynccontextmanager
async def example(script: str) -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Each example logs one line when it listens (to stderr): wait for it, not for a guess.
        assert proc.stderr is not None
        seen: list[str] = []
        async with asyncio.timeout(15):
            while not seen or "listening on" not in seen[-1]:
                line = await proc.stderr.readline()
                if not line:
                    raise AssertionError(f"{script} did not start: {''.join(seen)}")
                seen.append(line.decode(errors="replace"))
        yield f"ws://127.0.0.1:{port}/"
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def bridge_for(url: str, calls: Calls, **cfg: object) -> AgentBridge:
    return AgentBridge(
        agent_endpoint(url, **cfg),
        call_id="call_example",
        account_id="acct_main",
        from_="+15551230000",
        to="+15557650000",
        metadata={},
        on_hangup_request=calls.hangups.append,
        on_agent_lost=calls.lost.append,
        send_dtmf=calls.dtmf.append,
    )


async def echo_round_trip(bridge: AgentBridge) -> MediaTick:
    await bridge.connect()
    bridge.start_media(time.monotonic())
    tick = MediaTick(bridge, lambda i: tone(1000, 8000, 20, phase_samples=160 * i), interval=0.01).start()
    await wait_until(lambda: sum(1 for f in tick.played if f is not None and rms(f) > 1000) >= 30, timeout=5)
    await tick.stop()
    return tick


async def test_echo_agent_echoes_caller_audio() -> None:
    async with example("echo_agent.py") as url:
        calls = Calls()
        bridge = bridge_for(url, calls, sample_rate=16000)
        tick = await echo_round_trip(bridge)
        heard = b"".join(f for f in tick.played if f is not None and rms(f) > 1000)
        assert abs(dominant_hz(heard, 8000) - 1000) < 5
        bridge.on_dtmf("4", 80)
        await wait_until(lambda: calls.dtmf == ["4"])
        await bridge.stop("remote_hangup")
        summary = bridge.summary()
        assert summary["summary"]["echoed_frames"] > 0
        assert summary["answer_to_first_audio_ms"] is not None


async def test_twilio_echo_agent_echoes_caller_audio() -> None:
    async with example("twilio_echo_agent.py") as url:
        calls = Calls()
        bridge = bridge_for(url, calls, protocol="twilio", sample_rate=8000)
        tick = await echo_round_trip(bridge)
        heard = b"".join(f for f in tick.played if f is not None and rms(f) > 1000)
        assert abs(dominant_hz(heard, 8000) - 1000) < 5
        bridge.on_dtmf("#")  # the agent ends the call by closing normally
        await wait_until(lambda: calls.hangups == ["agent_hangup"] or bridge.state == "ended")
        await bridge.stop("api_hangup")
        assert calls.lost == []


async def test_tone_agent_greets_marks_and_hangs_up_after_the_goodbye() -> None:
    async with example("tone_agent.py") as url:
        calls = Calls()
        bridge = bridge_for(url, calls, sample_rate=24000)
        await bridge.connect()
        bridge.start_media(time.monotonic())
        await wait_until(lambda: bridge.playout_queued_ms > 1000)
        tick = MediaTick(bridge, interval=0.002).start()
        await wait_until(lambda: bridge.summary()["marks"]["played"] == 1, timeout=5)
        bridge.on_dtmf("#", 100)
        await wait_until(lambda: calls.hangups == ["agent_hangup"], timeout=5)
        await tick.stop()
        await bridge.stop("api_hangup")
        summary = bridge.summary()
        # Greeting (1.3 s) and goodbye (0.65 s) both played in full.
        assert summary["agent_audio_ms"] >= 1950
        assert summary["summary"] == {"agent": "tone"}
