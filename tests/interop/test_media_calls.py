"""Media through real calls placed by the user agent: SIPp streams a mu-law tone and plays an
RFC 4733 capture; the agent (a real websocket server) hears the tone and gets the digit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.interop.conftest import gateway_config, running_gateway
from tests.support.agents import AgentServer
from tests.support.peers.audio import tone, tone_power, ulaw_encode
from tests.support.peers.sipp import SippUas

pytestmark = pytest.mark.interop


def _trunk(uas: SippUas) -> dict[str, object]:
    return {"uri": f"sip:{uas.host}:{uas.port};transport={uas.transport}"}


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_streamed_tone_reaches_the_agent(tmp_path: Path, rate: int) -> None:
    stream = ulaw_encode(tone(1000.0, 5.0, 8000, amplitude=0.4))
    with SippUas("uas_answer_stream", files={"stream.ulaw": stream}) as uas:
        async with AgentServer() as server:
            config = gateway_config(tmp_path, _trunk(uas))
            config["agents"] = [{"id": "agt", "url": server.url, "sample_rate": rate}]
            async with running_gateway(config) as gw:
                call = await gw.create(agent_id="agt")
                peer = await server.accept(timeout=10)
                start = await peer.recv_json(timeout=10, type="start")
                audio = await peer.recv_audio(rate * 2 * 2, timeout=10)  # two seconds
                await gw.hangup(call["id"])
                done = await gw.get(call["id"])
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert start["media"]["sample_rate"] == rate
    pcm = np.frombuffer(audio, dtype="<i2")[rate // 2 :]  # skip the first half second
    assert tone_power(pcm, rate, 1000.0) > 0.8
    stats = done["media_stats"]
    assert stats["packets_in"] > 50 and stats["dropped_foreign"] == 0


async def test_rfc4733_digits_from_a_capture_reach_the_agent(tmp_path: Path) -> None:
    with SippUas("uas_answer_pcap_dtmf") as uas:
        async with AgentServer() as server:
            config = gateway_config(tmp_path, _trunk(uas))
            config["agents"] = [{"id": "agt", "url": server.url}]
            async with running_gateway(config) as gw:
                call = await gw.create(agent_id="agt")
                peer = await server.accept(timeout=10)
                dtmf = await peer.recv_json(timeout=10, type="dtmf")
                await asyncio.sleep(1.0)  # any duplicate (end-packet retransmissions) would arrive now
                await gw.hangup(call["id"])
                done = await gw.get(call["id"])
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert dtmf["digit"] == "1" and dtmf["duration_ms"] > 0
    digits = [m for m in peer.texts() if m.get("type") == "dtmf"]
    assert len(digits) == 1
    assert done["agent_summary"]["dtmf_received"] == "1"
