"""AgentConnector against real websocket agents on loopback: the handshake, and reconnection
driven by a fake clock (the backoff ends when the test says, not after a real wait)."""

from __future__ import annotations

import asyncio

import pytest

from media.agent.connection import AgentConnector, AgentUnavailable
from media.agent.websocket import AgentSocket
from tests.support.agents import ORBIT, AgentServer, agent_endpoint, free_port
from tests.support.clock import FakeClock, wait_until


def connector(url: str, clock: FakeClock | None = None, **endpoint: object) -> AgentConnector:
    clock = clock or FakeClock()
    return AgentConnector(
        agent_endpoint(url, **endpoint), call_id="call_conn", subprotocol=ORBIT, clock=clock, sleep=clock.sleep
    )


async def test_open_does_the_handshake_with_subprotocol_and_headers() -> None:
    async with AgentServer(require_headers={"Authorization": "Bearer k"}) as server:
        clock = FakeClock(start=50.0)
        sock = await connector(server.url, clock, headers={"Authorization": "Bearer k"}).open()
        peer = await server.accept()
        assert isinstance(sock, AgentSocket) and sock.is_open
        assert sock.subprotocol == ORBIT and peer.subprotocol == ORBIT
        assert peer.headers["User-Agent"] == "orbit-gateway"
        assert sock.opened_at == 50.0  # dated by the clock it was given
        sock.close(1000)
        assert await peer.wait_closed() == 1000


@pytest.mark.parametrize(("status", "reason"), [(503, "http_error"), (None, "refused")])
async def test_open_failures_say_why(status: int | None, reason: str) -> None:
    if status is None:
        err = await _open_error(connector(f"ws://127.0.0.1:{free_port()}/agent"))
    else:
        async with AgentServer(reject_status=status) as server:
            err = await _open_error(connector(server.url))
    assert err.reason == reason


async def _open_error(conn: AgentConnector) -> AgentUnavailable:
    with pytest.raises(AgentUnavailable) as info:
        await conn.open()
    return info.value


async def test_reconnect_after_a_rejection_waits_for_the_backoff_on_the_fake_clock() -> None:
    async with AgentServer(reject_status=503, reject_times=1) as server:
        clock = FakeClock()
        conn = connector(server.url, clock, reconnect_attempts=3)
        attempts: list[float] = []
        task = asyncio.ensure_future(conn.reconnect(lambda: attempts.append(clock.now)))
        await wait_until(lambda: clock.sleeping == [0.2])  # first attempt rejected, second waiting
        assert server.rejected == 1 and server.peers == [] and len(attempts) == 2
        clock.advance(0.2)
        sock = await task
        assert sock is not None and sock.is_open
        assert (await server.accept()).subprotocol == ORBIT
        assert conn.budget.used == 2
        sock.close(1000)
