"""AgentBridge speaking Twilio Media Streams to a Pipecat-style agent."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

from media.agent.bridge import AgentBridge, BridgeState
from media.g711 import ulaw_decode, ulaw_encode
from tests.component.test_agent_bridge import Calls
from tests.support.agents import AgentPeer, AgentServer, MediaTick, agent_endpoint, dominant_hz, rms, tone
from tests.support.clock import wait_until


def twilio_bridge(url: str, calls: Calls, **cfg: Any) -> AgentBridge:
    return AgentBridge(
        agent_endpoint(url, protocol="twilio", sample_rate=8000, **cfg),
        call_id="call_01HZX3Q9K6",
        account_id="acct_main",
        from_="+15551230000",
        to="+15557650000",
        metadata={"lead_id": 42, "name": "Ada"},
        on_hangup_request=calls.hangups.append,
        on_agent_lost=calls.lost.append,
        send_dtmf=calls.dtmf.append,
    )


def media(stream_sid: str, pcm: bytes) -> dict[str, Any]:
    """What Pipecat's TwilioFrameSerializer sends for an audio frame."""
    return {
        "event": "media",
        "streamSid": stream_sid,
        "media": {"payload": base64.b64encode(ulaw_encode(pcm)).decode()},
    }


async def handshake(server: AgentServer, bridge: AgentBridge) -> tuple[AgentPeer, str]:
    await bridge.connect()
    peer = await server.accept()
    bridge.start_media(time.monotonic())
    connected = json.loads(await peer.recv())
    start = json.loads(await peer.recv())
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    return peer, start["streamSid"]


async def test_pipecat_style_round_trip() -> None:
    async with AgentServer(subprotocols=None) as server:
        calls = Calls()
        bridge = twilio_bridge(server.url, calls)
        await bridge.connect()
        peer = await server.accept()
        assert "Sec-WebSocket-Protocol" not in peer.headers and peer.subprotocol is None
        bridge.start_media(time.monotonic())
        connected = json.loads(await peer.recv())
        start = json.loads(await peer.recv())
        assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        sid = start["streamSid"]
        assert re.fullmatch(r"MZ[0-9a-f]{32}", sid)
        assert start == {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": sid,
            "start": {
                "streamSid": sid,
                "accountSid": "acct_main",
                "callSid": "call_01HZX3Q9K6",
                "tracks": ["inbound"],
                "customParameters": {
                    "lead_id": "42",
                    "name": "Ada",
                    "from_number": "+15551230000",
                    "to_number": "+15557650000",
                },
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }

        # Caller audio: mu-law 8 kHz, 20 ms per media event, numbered like Twilio.
        tick = MediaTick(bridge, lambda i: tone(1000, 8000, 20, phase_samples=160 * i))
        for _ in range(25):
            tick.tick()
        events = [await peer.recv_json(event="media") for _ in range(25)]
        assert [e["sequenceNumber"] for e in events] == [str(n) for n in range(2, 27)]
        assert [e["media"]["chunk"] for e in events] == [str(n) for n in range(1, 26)]
        assert [e["media"]["timestamp"] for e in events] == [str(20 * n) for n in range(25)]
        assert all(e["media"]["track"] == "inbound" and e["streamSid"] == sid for e in events)
        heard = b"".join(ulaw_decode(base64.b64decode(e["media"]["payload"])) for e in events)
        assert len(heard) == 25 * 320
        assert abs(dominant_hz(heard, 8000) - 1000) < 5

        # The agent speaks (one TTS chunk of 300 ms) and marks the end of it.
        await peer.send_json(media(sid, tone(600, 8000, 300)))
        await peer.send_json({"event": "mark", "streamSid": sid, "mark": {"name": "utterance-1"}})
        await wait_until(lambda: bridge.playout_queued_ms >= 300)
        tick.played.clear()
        for _ in range(15):
            tick.tick()
        assert abs(dominant_hz(tick.audio(), 8000) - 600) < 5
        assert all(f is not None and rms(f) > 1000 for f in tick.played)
        mark = await peer.recv_json(event="mark")
        assert mark == {
            "event": "mark",
            "sequenceNumber": mark["sequenceNumber"],
            "streamSid": sid,
            "mark": {"name": "utterance-1"},
        }

        # Interruption: Pipecat sends clear; the pending mark comes back, no "cleared" event.
        await peer.send_json(media(sid, tone(600, 8000, 1000)))
        await peer.send_json({"event": "mark", "streamSid": sid, "mark": {"name": "utterance-2"}})
        await wait_until(lambda: bridge.playout_queued_ms >= 1000)
        tick.tick()
        await peer.send_json({"event": "clear", "streamSid": sid})
        await wait_until(lambda: bridge.summary()["interruptions"] == 1)
        assert tick.tick() is None
        assert (await peer.recv_json(event="mark"))["mark"] == {"name": "utterance-2"}

        # Caller DTMF.
        bridge.on_dtmf("7", 100)
        dtmf = await peer.recv_json(event="dtmf")
        assert dtmf == {
            "event": "dtmf",
            "streamSid": sid,
            "sequenceNumber": dtmf["sequenceNumber"],
            "dtmf": {"track": "inbound_track", "digit": "7"},
        }

        await bridge.stop("remote_hangup")
        stop = await peer.recv_json(event="stop")
        assert stop["stop"] == {"accountSid": "acct_main", "callSid": "call_01HZX3Q9K6"}
        assert stop["streamSid"] == sid
        assert await peer.wait_closed() == 1000
        seqs = [int(m["sequenceNumber"]) for m in peer.texts() if "sequenceNumber" in m]
        assert seqs == list(range(1, len(seqs) + 1))
        summary = bridge.summary()
        assert summary["protocol"] == "twilio"
        assert summary["marks"] == {"played": 1, "cleared": 1}
        assert summary["summary"] is None


async def test_agent_closing_1000_hangs_up_after_its_audio_played() -> None:
    async with AgentServer(subprotocols=None) as server:
        calls = Calls()
        bridge = twilio_bridge(server.url, calls)
        peer, sid = await handshake(server, bridge)
        tick = MediaTick(bridge)
        await peer.send_json(media(sid, tone(500, 8000, 200)))
        await peer.close(1000)
        await wait_until(lambda: bridge.state is BridgeState.ENDED)  # closed normally: done, not dropped
        assert calls.hangups == [] and len(server.peers) == 1
        for _ in range(10):
            tick.tick()
        await wait_until(lambda: calls.hangups == ["agent_hangup"])
        await bridge.stop("api_hangup")
        assert bridge.summary()["end_reason"] == "agent_hangup"


async def test_reconnect_is_a_new_stream() -> None:
    async with AgentServer(subprotocols=None) as server:
        calls = Calls()
        bridge = twilio_bridge(server.url, calls)
        first, sid1 = await handshake(server, bridge)
        await first.close(1011)
        second = await server.accept()
        connected = json.loads(await second.recv())
        start = json.loads(await second.recv())
        assert connected["event"] == "connected"
        assert start["event"] == "start" and start["sequenceNumber"] == "1"
        assert start["streamSid"] != sid1
        await bridge.stop("remote_hangup")


async def test_binary_flood_closes_with_1003() -> None:
    async with AgentServer(subprotocols=None) as server:
        calls = Calls()
        bridge = twilio_bridge(server.url, calls)
        peer, _ = await handshake(server, bridge)
        for _ in range(25):
            await peer.send(bytes(320))
        assert await peer.wait_closed() == 1003
        await wait_until(lambda: calls.lost == ["protocol_violation"])
        assert bridge.summary()["protocol_violations_by_kind"] == {"binary_not_allowed": 21}
        await bridge.stop("error")
