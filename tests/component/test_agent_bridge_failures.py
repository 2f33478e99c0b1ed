"""AgentBridge failure handling: unreachable agents, drops and reconnection, protocol violations."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from media.agent.bridge import AgentBridge, AgentUnavailable, BridgeState
from tests.component.test_agent_bridge import Calls, make_bridge, started
from tests.support.agents import AgentServer, MediaTick, free_port, silent_tcp_server, tone
from tests.support.clock import FakeClock, wait_until


async def connect_error(bridge: AgentBridge) -> tuple[AgentUnavailable, float]:
    t0 = time.monotonic()
    with pytest.raises(AgentUnavailable) as info:
        await bridge.connect()
    return info.value, time.monotonic() - t0


async def test_refused_connection_is_reported_quickly() -> None:
    calls = Calls()
    bridge = make_bridge(f"ws://127.0.0.1:{free_port()}/agent", calls)
    err, elapsed = await connect_error(bridge)
    assert err.reason == "refused"
    assert elapsed < 1.0
    assert bridge.state == "unavailable"
    assert bridge.summary()["end_reason"] == "agent_unavailable"
    assert calls.lost == []  # the caller of connect() applies the policy
    await bridge.stop("error")
    assert bridge.state == "stopped" and bridge.summary()["end_reason"] == "agent_unavailable"


async def test_handshake_timeout() -> None:
    async with silent_tcp_server() as silent:
        bridge = make_bridge(f"ws://127.0.0.1:{silent.port}/agent", Calls(), connect_timeout_seconds=0.3)
        err, elapsed = await connect_error(bridge)
        assert err.reason == "timeout"
        assert 0.25 < elapsed < 1.5


@pytest.mark.parametrize("status", [403, 503])
async def test_http_error_at_handshake(status: int) -> None:
    async with AgentServer(reject_status=status) as server:
        err, _ = await connect_error(make_bridge(server.url, Calls()))
        assert err.reason == "http_error"
        assert str(status) in err.detail


async def test_missing_credentials_are_an_http_error() -> None:
    async with AgentServer(require_headers={"Authorization": "Bearer right"}) as server:
        bridge = make_bridge(server.url, Calls(), headers={"Authorization": "Bearer wrong"})
        err, _ = await connect_error(bridge)
        assert err.reason == "http_error" and "401" in err.detail


async def test_stop_while_connecting_ends_the_attempt() -> None:
    async with silent_tcp_server() as silent:
        bridge = make_bridge(f"ws://127.0.0.1:{silent.port}/agent", Calls(), connect_timeout_seconds=5)
        connecting = asyncio.create_task(bridge.connect())
        await wait_until(lambda: silent.requests_read == 1)  # the handshake is waiting for its answer
        t0 = time.monotonic()
        await bridge.stop("remote_hangup")
        with pytest.raises(AgentUnavailable) as info:
            await connecting
        assert info.value.reason == "stopped"
        assert time.monotonic() - t0 < 1.0


def indexed(i: int) -> bytes:
    """A caller frame that says which tick produced it."""
    return (i % 30000).to_bytes(2, "little") * 160


def index_of(frame: bytes) -> int:
    return int.from_bytes(frame[:2], "little")


async def test_drop_reconnects_with_reconnect_true_and_buffered_caller_audio() -> None:
    async with AgentServer() as server:
        calls = Calls()
        clock = FakeClock()
        bridge, first = await started(server, calls, clock=clock, sample_rate=8000, reconnect_attempts=3)
        tick = MediaTick(bridge, indexed)
        for _ in range(5):
            tick.tick()
        await first.recv_audio(320 * 5)
        server.reject_status, server.reject_times = 503, 1  # the first reconnect attempt fails
        await first.close(1011, "agent restarting")
        # The first attempt went at once and was rejected; the second waits out its 0.2 s backoff
        # on the fake clock, while the caller's audio of the outage is kept.
        await wait_until(lambda: clock.sleeping == [0.2])
        assert server.rejected == 1 and bridge.stats.reconnect_attempts == 2
        for _ in range(10):
            tick.tick()
        clock.advance(0.2)
        second = await server.accept(timeout=3)
        start = await second.recv_json(type="start")
        assert start["reconnect"] is True
        assert start["call"]["id"] == "call_01HZX3Q9K6"
        for _ in range(5):
            tick.tick()
        await second.recv_audio(320 * 15)

        before = [index_of(m) for m in first.received if isinstance(m, bytes)]
        after = [index_of(m) for m in second.received if isinstance(m, bytes)]
        # The outage was buffered and arrived right after start, in order, then the live audio.
        assert before == list(range(5))
        assert after == list(range(5, 20))
        summary = bridge.summary()
        assert summary["reconnects"] == 1
        assert summary["reconnect_attempts"] == 2
        assert calls.lost == []
        await bridge.stop("remote_hangup")


async def test_queued_audio_and_marks_of_a_dropped_connection_are_gone() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, first = await started(server, calls, sample_rate=8000)
        await first.send(tone(300, 8000, 900))
        await first.send_json({"type": "mark", "name": "lost"})
        await wait_until(lambda: bridge.playout_queued_ms >= 900)
        await first.close(1001)
        second = await server.accept()
        await second.recv_json(type="start", reconnect=True)
        assert bridge.playout_queued_ms == 0
        assert bridge.next_frame() is None
        # What the bridge sends after start comes in order: had the dropped mark been answered,
        # its answer would come before this digit.
        bridge.on_dtmf("5", 100)
        await second.recv_json(type="dtmf")
        assert not any(m.get("type") == "mark" for m in second.texts())
        await bridge.stop("remote_hangup")


async def test_reconnect_budget_spent_calls_on_agent_lost() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000, reconnect_attempts=2)
        server.reject_status = 503
        await peer.close(1011)
        await wait_until(lambda: calls.lost == ["reconnect_failed"], timeout=5)
        assert bridge.state == "lost"
        summary = bridge.summary()
        assert summary["reconnect_attempts"] == 2 and summary["reconnects"] == 0
        assert summary["end_reason"] == "reconnect_failed"
        # Silent from now on; stop is still safe.
        bridge.on_caller_audio(bytes(320))
        assert bridge.next_frame() is None
        await bridge.stop("error")
        assert bridge.state == "stopped" and bridge.summary()["end_reason"] == "reconnect_failed"


async def test_no_reconnect_budget_means_lost_at_the_first_drop() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, reconnect_attempts=0)
        await peer.close(1011)
        await wait_until(lambda: calls.lost == ["reconnect_failed"])
        assert len(server.peers) == 1
        await bridge.stop("error")


async def test_agent_that_hangs_up_then_closes_is_not_reconnected() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000)
        tick = MediaTick(bridge)
        await peer.send(tone(400, 8000, 200))
        await peer.send_json({"type": "hangup"})
        await peer.close(1000)
        await wait_until(lambda: bridge.state is BridgeState.ENDED)
        assert calls.hangups == []  # its goodbye is still playing
        for _ in range(10):
            tick.tick()
        await wait_until(lambda: calls.hangups == ["agent_hangup"])
        assert len(server.peers) == 1
        await bridge.stop("api_hangup")


async def test_a_few_bad_frames_are_counted_and_ignored() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000)
        await peer.send("{not json")
        await peer.send(json.dumps({"type": "dance"}))
        await peer.send(json.dumps({"type": "mark"}))
        await peer.send(bytes(321))  # odd-sized: rejected whole
        await peer.send(bytes(16002))  # over 1 s at 8 kHz
        await peer.send(tone(300, 8000, 100))
        await wait_until(lambda: bridge.playout_queued_ms == 100)
        summary = bridge.summary()
        assert summary["protocol_violations"] == 5
        assert summary["protocol_violations_by_kind"] == {
            "malformed_json": 1,
            "unknown_type": 1,
            "missing_field": 1,
            "odd_sized_frame": 1,
            "oversized_frame": 1,
        }
        assert bridge.connected and calls.lost == []
        await bridge.stop("remote_hangup")


@pytest.mark.parametrize(
    ("bad", "code"),
    [("{not json", 1008), (json.dumps({"type": "nope"}), 1008), (bytes(16002), 1009), (bytes(3), 1008)],
)
async def test_a_flood_of_bad_frames_closes_with_the_right_code(bad: str | bytes, code: int) -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000)
        sock = bridge._sock
        assert sock is not None
        for _ in range(25):
            await peer.send(bad)
        assert await peer.wait_closed() == code
        await wait_until(lambda: calls.lost == ["protocol_violation"])
        assert bridge.state == "lost"
        summary = bridge.summary()
        assert summary["protocol_violations"] == 21  # the 21st within 10 s tipped it over
        assert summary["end_reason"] == "protocol_violation"
        await sock.closed  # the closed connection has been seen: not reconnected (LOST is final)
        assert len(server.peers) == 1 and bridge.state == "lost"
        await bridge.stop("error")


async def test_message_over_the_websocket_limit_is_closed_1009_and_reconnected() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge, peer = await started(server, calls, sample_rate=8000)
        await peer.send(bytes(2 << 20))
        assert await peer.wait_closed() == 1009
        second = await server.accept()
        await second.recv_json(type="start", reconnect=True)
        assert bridge.summary()["protocol_violations_by_kind"] == {"oversized_frame": 1}
        await bridge.stop("remote_hangup")


async def test_silent_dead_agent_is_detected_by_keepalive_and_reconnected() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge = AgentBridge(
            make_bridge(server.url, calls).agent,
            call_id="call_keepalive",
            account_id="acct_main",
            from_="+15551230000",
            to="+15557650000",
            on_hangup_request=calls.hangups.append,
            on_agent_lost=calls.lost.append,
            ping_interval=0.05,
            ping_timeout=0.3,
        )
        await bridge.connect()
        first = await server.accept()
        bridge.start_media(time.monotonic())
        await first.recv_json(type="start")
        sock = bridge._sock
        assert sock is not None
        await wait_until(lambda: sock.pongs_received >= 3)  # past its ping timeout (0.3 s) three times
        assert len(server.peers) == 1 and bridge._sock is sock  # pongs keep a live agent connected
        first.ws.transport.pause_reading()  # the agent hangs: no more pongs
        second = await server.accept(timeout=2)
        await second.recv_json(type="start", reconnect=True)
        first.ws.transport.resume_reading()
        await bridge.stop("remote_hangup")


async def test_hangup_before_answer_is_immediate() -> None:
    async with AgentServer() as server:
        calls = Calls()
        bridge = make_bridge(server.url, calls)
        await bridge.connect()
        peer = await server.accept()
        await peer.send_json({"type": "hangup", "after_playout": True})
        await wait_until(lambda: calls.hangups == ["agent_hangup"])
        await bridge.stop("api_hangup")
        assert peer.received == []
