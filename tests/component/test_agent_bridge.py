"""AgentBridge against real websocket agents (orbit-voice), driven by a fake media tick."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from media.agent.bridge import AgentBridge, BridgeState
from media.agent.state import InvalidTransition
from media.resample import FrameResamplers
from tests.support.agents import (
    ORBIT,
    AgentPeer,
    AgentServer,
    MediaTick,
    agent_endpoint,
    dominant_hz,
    rms,
    tone,
)
from tests.support.clock import FakeClock, wait_until


class Calls:
    """Records the bridge's callbacks."""

    def __init__(self) -> None:
        self.hangups: list[str] = []
        self.lost: list[str] = []
        self.dtmf: list[str] = []


def make_bridge(
    url: str,
    calls: Calls,
    resamplers: FrameResamplers | None = None,
    clock: FakeClock | None = None,
    **cfg: Any,
) -> AgentBridge:
    """A bridge to the agent at ``url`` (``cfg``: AgentEndpoint fields); with ``clock``, its
    time and reconnect backoff run on that fake clock."""
    timing: dict[str, Any] = {} if clock is None else {"clock": clock, "sleep": clock.sleep}
    return AgentBridge(
        agent_endpoint(url, **cfg),
        call_id="call_01HZX3Q9K6",
        account_id="acct_main",
        from_="+15551230000",
        to="+15557650000",
        metadata={"lead_id": 42},
        on_hangup_request=calls.hangups.append,
        on_agent_lost=calls.lost.append,
        send_dtmf=calls.dtmf.append,
        resamplers=resamplers,
        **timing,
    )


async def started(
    server: AgentServer,
    calls: Calls,
    resamplers: FrameResamplers | None = None,
    clock: FakeClock | None = None,
    **cfg: Any,
) -> tuple[AgentBridge, AgentPeer]:
    bridge = make_bridge(server.url, calls, resamplers, clock, **cfg)
    await bridge.connect()
    peer = await server.accept()
    bridge.start_media((clock or time.monotonic)())
    await peer.recv_json(type="start")
    return bridge, peer


async def test_connects_early_with_subprotocol_headers_and_no_compression() -> None:
    async with AgentServer(require_headers={"Authorization": "Bearer s3cr3t"}) as server:
        calls = Calls()
        bridge = make_bridge(server.url, calls, headers={"Authorization": "Bearer s3cr3t"}, sample_rate=16000)
        await bridge.connect()
        peer = await server.accept()
        assert peer.subprotocol == ORBIT
        assert "Sec-WebSocket-Extensions" not in peer.headers  # permessage-deflate not offered
        assert bridge.connected and bridge.summary()["connected_at"] is not None
        # Nothing is sent while the call rings, nor kept for later: start comes first, then
        # what the caller does after the answer.
        bridge.on_caller_audio(bytes(320))
        bridge.on_dtmf("1", 100)
        bridge.start_media(time.monotonic())
        bridge.on_dtmf("9", 100)
        start = json.loads(await peer.recv())
        assert json.loads(await peer.recv()) == {"type": "dtmf", "digit": "9", "duration_ms": 100}
        assert start == {
            "type": "start",
            "call": {
                "id": "call_01HZX3Q9K6",
                "from": "+15551230000",
                "to": "+15557650000",
                "direction": "outbound",
                "metadata": {"lead_id": 42},
            },
            "media": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1, "frame_ms": 20},
            "reconnect": False,
        }
        await bridge.stop("api_hangup")


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "batched"])
@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_audio_both_ways_keeps_its_frequency(rate: int, batched: bool) -> None:
    async with AgentServer() as server:
        calls = Calls()
        resamplers = FrameResamplers() if batched else None
        bridge, peer = await started(server, calls, resamplers, sample_rate=rate)
        caller = lambda i: tone(1000, 8000, 20, phase_samples=160 * i)  # noqa: E731
        tick = MediaTick(bridge, caller, interval=0.005, resamplers=resamplers)
        for _ in range(50):  # 1 s of caller audio
            tick.tick()
        frame_bytes = rate // 50 * 2
        got = await peer.recv_audio(50 * frame_bytes)
        assert all(len(m) == frame_bytes for m in peer.received if isinstance(m, bytes))
        assert dominant_hz(got[frame_bytes * 5 :], rate) == pytest.approx(1000, abs=5)

        # The agent answers with 1 s of 600 Hz in uneven chunks.
        speech = tone(600, rate, 1000)
        for a, b in ((0, 2 * 977), (2 * 977, 2 * (rate // 3)), (2 * (rate // 3), len(speech))):
            await peer.send(speech[a:b])
        await wait_until(lambda: bridge.playout_queued_ms >= 900)
        tick.played.clear()
        for _ in range(60):
            tick.tick()
        played = tick.audio()
        assert dominant_hz(played[: 16 * 1000], 8000) == pytest.approx(600, abs=5)
        voiced = [rms(f) > 1000 for f in (f or bytes(320) for f in tick.played)]
        # All of it played, contiguously (the resampler delays it by a few ms).
        assert 49 <= sum(voiced) <= 51
        assert voiced.index(True) <= 1
        summary = bridge.summary()
        assert summary["caller_audio_ms"] == tick.ticks * 20
        assert 990 <= summary["agent_audio_ms"] <= 1040
        await bridge.stop("remote_hangup")


async def test_answer_to_first_audio_is_measured_and_early_audio_plays_at_answer() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge = make_bridge(server.url, calls, sample_rate=16000)
        await bridge.connect()
        peer = await server.accept()
        # An agent that speaks as soon as it is connected: ready before the answer.
        await peer.send(tone(440, 16000, 400))
        await wait_until(lambda: bridge.playout_queued_ms > 300)
        answered = time.monotonic()
        bridge.start_media(answered)
        tick = MediaTick(bridge, interval=0.02)
        assert tick.tick() is not None
        ms = bridge.summary()["answer_to_first_audio_ms"]
        assert ms is not None and ms < 20
        await bridge.stop("api_hangup")


async def test_barge_in_flushes_within_one_frame_and_reports_what_was_heard() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000)
        tick = MediaTick(bridge)
        await peer.send(tone(500, 8000, 200))
        await peer.send_json({"type": "mark", "name": "first"})
        for _ in range(4):
            await peer.send(tone(500, 8000, 700))
        await peer.send_json({"type": "mark", "name": "second"})
        await peer.send_json({"type": "mark", "name": "third"})
        await wait_until(lambda: bridge.playout_queued_ms >= 3000)
        for _ in range(25):  # 500 ms heard
            assert tick.tick() is not None
        assert (await peer.recv_json(type="mark")) == {"type": "mark", "name": "first", "status": "played"}

        await peer.send_json({"type": "clear"})
        await wait_until(lambda: bridge.summary()["interruptions"] == 1)
        assert tick.tick() is None  # the very next tick is silence

        second = await peer.recv_json(type="mark")
        third = await peer.recv_json(type="mark")
        cleared = await peer.recv_json(type="cleared")
        assert second == {"type": "mark", "name": "second", "status": "cleared"}
        assert third == {"type": "mark", "name": "third", "status": "cleared"}
        assert cleared == {"type": "cleared", "played_ms": 500, "dropped_ms": 2500}
        # Audio after a clear plays normally.
        await peer.send(tone(500, 8000, 100))
        await wait_until(lambda: bridge.playout_queued_ms >= 100)
        assert tick.tick() is not None
        summary = bridge.summary()
        assert summary["interruptions"] == 1
        assert summary["marks"] == {"played": 1, "cleared": 2}
        assert summary["agent_audio_cleared_ms"] == 2500
        await bridge.stop("remote_hangup")


@pytest.mark.parametrize("rate", [8000, 24000])
async def test_marks_come_back_in_order_when_their_audio_has_played(rate: int) -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=rate)
        tick = MediaTick(bridge)
        await peer.send_json({"type": "mark", "name": "empty"})  # nothing queued: answered at once
        assert await peer.recv_json(type="mark") == {"type": "mark", "name": "empty", "status": "played"}
        for i in range(3):
            await peer.send(tone(700, rate, 100))
            await peer.send_json({"type": "mark", "name": f"m{i}"})
        await wait_until(lambda: bridge.playout_queued_ms >= 250)
        reached_at: list[int] = []  # tick at which each mark was reached in playout
        for n in range(1, 25):
            before = bridge.stats.marks_played
            tick.tick()
            reached_at += [n] * (bridge.stats.marks_played - before)
        # Each mark right after its 100 ms (5 frames), within the resampler's latency.
        for i, n in enumerate(reached_at):
            assert 5 * (i + 1) <= n <= 5 * (i + 1) + 2
        await wait_until(lambda: sum(m.get("type") == "mark" for m in peer.texts()) == 4)
        answers = [m for m in peer.texts() if m.get("type") == "mark"]
        assert [m["name"] for m in answers] == ["empty", "m0", "m1", "m2"]
        assert all(m["status"] == "played" for m in answers)
        assert bridge.summary()["marks"] == {"played": 4, "cleared": 0}
        await bridge.stop("remote_hangup")


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_hangup_after_playout_waits_for_the_queued_audio(rate: int) -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=rate)
        tick = MediaTick(bridge)
        await peer.send(tone(400, rate, 500))
        await peer.send_json({"type": "hangup", "after_playout": True})
        await wait_until(lambda: bridge.playout_queued_ms >= 450 and bridge.hangup_requested)
        n = 0
        while bridge.summary()["end_reason"] != "agent_hangup":  # set as the hang-up is requested
            tick.tick()
            n += 1
            assert n < 60
        await wait_until(lambda: calls.hangups == ["agent_hangup"])
        voiced = [f is not None and rms(f) > 500 for f in tick.played]
        # The last frame taken carried the end of the goodbye; nothing voiced was cut.
        assert sum(voiced) >= 25
        assert n in (25, 26)
        assert calls.hangups == ["agent_hangup"]
        assert bridge.summary()["end_reason"] == "agent_hangup"
        await bridge.stop("api_hangup")
        assert await peer.recv_json(type="stop") == {"type": "stop", "reason": "api_hangup"}


async def test_hangup_without_playout_is_immediate() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000)
        await peer.send(tone(400, 8000, 2000))
        await peer.send_json({"type": "hangup", "after_playout": False})
        await wait_until(lambda: calls.hangups == ["agent_hangup"])
        await bridge.stop("api_hangup")


async def test_dtmf_both_ways() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=16000)
        await peer.send_json({"type": "send_dtmf", "digits": "12#a"})
        await wait_until(lambda: calls.dtmf == ["12#A"])
        bridge.on_dtmf("5", 120)
        bridge.on_dtmf("#", None)
        assert await peer.recv_json(type="dtmf") == {"type": "dtmf", "digit": "5", "duration_ms": 120}
        assert await peer.recv_json(type="dtmf") == {"type": "dtmf", "digit": "#", "duration_ms": 0}
        summary = bridge.summary()
        assert summary["dtmf_sent"] == "12#A"
        assert summary["dtmf_received"] == "5#"
        await bridge.stop("remote_hangup")


async def test_graceful_stop_keeps_a_late_summary_and_returns_when_the_agent_closes() -> None:
    async with AgentServer(close_on_stop=False) as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=16000, stop_grace_seconds=5.0)

        async def agent() -> None:
            assert await peer.recv_json(type="stop") == {"type": "stop", "reason": "remote_hangup"}
            await peer.send_json({"type": "summary", "data": {"outcome": "booked", "slot": 3}})
            await peer.close(1000)

        task = asyncio.create_task(agent())
        t0 = time.monotonic()
        await bridge.stop("remote_hangup")
        assert time.monotonic() - t0 < 2.0  # did not sit out the 5 s grace
        await task
        summary = bridge.summary()
        assert summary["summary"] == {"outcome": "booked", "slot": 3}
        assert summary["end_reason"] == "remote_hangup"
        assert summary["disconnected_at"] is not None
        assert bridge.state == "stopped"


async def test_stop_closes_with_1000_after_the_grace_period() -> None:
    async with AgentServer(close_on_stop=False) as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000, stop_grace_seconds=0.2)
        t0 = time.monotonic()
        await bridge.stop("max_duration")
        assert 0.15 < time.monotonic() - t0 < 2.0
        assert await peer.wait_closed() == 1000
        assert [m["type"] for m in peer.texts()] == ["start", "stop"]
        assert peer.texts()[-1]["reason"] == "max_duration"
        assert calls.lost == [] and calls.hangups == []


async def test_stop_before_answer_closes_without_start_or_stop() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge = make_bridge(server.url, calls)
        await bridge.connect()
        peer = await server.accept()
        await bridge.stop("remote_hangup")
        assert await peer.wait_closed() == 1000
        assert peer.received == []


async def test_start_media_before_the_connection_is_up_buffers_caller_audio() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge = make_bridge(server.url, calls, sample_rate=8000)
        connecting = asyncio.create_task(bridge.connect())
        bridge.start_media(time.monotonic())
        for i in range(5):
            bridge.on_caller_audio(bytes([i + 1]) * 320)
        await connecting
        peer = await server.accept()
        assert (await peer.recv_json())["type"] == "start"
        frames = [await peer.recv() for _ in range(5)]
        assert frames == [bytes([i + 1]) * 320 for i in range(5)]
        await bridge.stop("remote_hangup")


async def test_a_slow_agent_costs_dropped_frames_not_memory() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=24000)
        # The agent stops reading: its socket buffers fill, then ours; frames are dropped.
        peer.ws.transport.pause_reading()
        for _ in range(20_000):
            bridge.on_caller_audio(bytes(320))
        summary = bridge.summary()
        assert summary["caller_audio_dropped_ms"] > 0
        assert summary["caller_audio_ms"] + summary["caller_audio_dropped_ms"] == 20_000 * 20
        assert bridge._sock is not None and bridge._sock.write_buffer_size() < 200_000
        peer.ws.transport.resume_reading()
        await bridge.stop("remote_hangup")


@pytest.mark.parametrize("speaking", [False, True], ids=["silence", "speech"])
async def test_a_standing_lead_is_trimmed_in_silence_not_in_speech(speaking: bool) -> None:
    """A real-time agent one frame ahead (it once got a frame in late) is brought back in step
    within about a second of quiet audio; speech is played whole, lead and all."""
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=16000)
        tick = MediaTick(bridge, interval=0.02)
        frame = tone(600, 16000, 20) if speaking else bytes(640)
        await peer.send(frame)  # the frame ahead
        await wait_until(lambda: bridge.playout_queued_ms >= 20)
        queued_before_tick = []
        for _ in range(120):
            before = bridge.playout_queued_ms
            await peer.send(frame)
            await wait_until(lambda b=before: bridge.playout_queued_ms >= b + 20)
            queued_before_tick.append(bridge.playout_queued_ms)
            tick.tick()
        trimmed = bridge.summary()["agent_audio_trimmed_ms"]
        if speaking:
            assert trimmed == 0 and queued_before_tick[-1] == 40
        else:
            assert trimmed == 20
            assert queued_before_tick[:50] == [40] * 50 and queued_before_tick[-50:] == [20] * 50
        await bridge.stop("api_hangup")


def transitions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.to for r in caplog.records if r.getMessage() == "agent bridge state"]  # type: ignore[attr-defined]


async def test_a_call_with_a_drop_goes_through_the_states_in_the_table(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="media.agent.bridge")
    async with AgentServer() as server:
        calls = Calls()
        bridge, first = await started(server, calls, sample_rate=8000)
        assert bridge.state is BridgeState.STREAMING and bridge.streaming
        await first.close(1011)
        second = await server.accept()
        await second.recv_json(type="start", reconnect=True)
        await bridge.stop("remote_hangup")
    assert transitions(caplog) == [
        "connecting",
        "connected",
        "streaming",
        "reconnecting",
        "connected",
        "streaming",
        "stopping",
        "stopped",
    ]
    with pytest.raises(InvalidTransition):
        bridge._to(BridgeState.STREAMING)  # the one way to change state refuses what the table lacks
    assert bridge.state is BridgeState.STOPPED and not bridge.streaming
