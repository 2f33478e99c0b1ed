"""SIP over TCP cannot starve the node: a real SipStack on loopback, real sockets from several
127.0.0.x source addresses (Linux routes all of 127/8 to lo), real clock.

127.0.0.1 is the trunk here; every other 127.0.0.x address is a stranger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from gateway.metrics import GatewayMetrics
from gateway.sip.connections import TcpLimits
from gateway.sip.message import make_request, new_branch
from gateway.sip.stack import SipStack
from gateway.sip.transport import Address
from gateway.sip.useragent import UaConfig

TRUNK_IP = "127.0.0.1"
WAIT = 10.0  # upper bound of every wait on a condition


METRICS = GatewayMetrics(process_metrics=False)


def sample(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def refused(reason: str) -> float:
    return sample("orbit_sip_tcp_connections_refused_total", reason=reason)


def closed(reason: str) -> float:
    return sample("orbit_sip_tcp_connections_closed_total", reason=reason)


@asynccontextmanager
async def sip_stack(limits: TcpLimits) -> AsyncIterator[SipStack]:
    config = UaConfig(local_host=TRUNK_IP, udp_port=None, tcp_port=0, is_trusted=lambda ip: ip == TRUNK_IP)
    stack = SipStack(config, TRUNK_IP, lambda event: None, tcp_limits=limits, metrics=METRICS)
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


@dataclass
class Client:
    source: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: bytearray = field(default_factory=bytearray)

    @property
    def local(self) -> Address:
        name = self.writer.get_extra_info("sockname")
        return (name[0], name[1])

    async def closed_by_server(self, timeout: float = WAIT) -> bool:
        """Wait for the server to close: True on EOF or reset, False if still open after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), left)
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            if not chunk:
                return True
            self.received += chunk
        return False

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


async def connect(port: int, source: str) -> Client:
    reader, writer = await asyncio.open_connection(TRUNK_IP, port, local_addr=(source, 0))
    return Client(source, reader, writer)


def options(client: Client) -> bytes:
    host, port = client.local
    return bytes(
        make_request(
            "OPTIONS",
            f"sip:gw@{TRUNK_IP}",
            from_=f"<sip:carrier@{host}>;tag=t{port}",
            to=f"<sip:gw@{TRUNK_IP}>",
            call_id=f"ping-{port}@{host}",
            cseq=1,
            via=f"SIP/2.0/TCP {host}:{port};branch={new_branch()}",
        )
    )


async def wait_until(condition: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for c in opened:
        c.close()


LONG = TcpLimits(max_connections=6, max_per_source=2, first_message_timeout=60, idle_timeout=600)


async def test_limits_per_source_and_in_total(
    clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.sip.transport")
    before = {r: refused(r) for r in ("source_limit", "total_limit")}
    async with sip_stack(LONG) as stack:
        port = stack.tcp_port
        assert port is not None
        table = stack._transports._table
        # One stranger opens five: two are kept, the other three closed at once.
        for _ in range(5):
            clients.append(await connect(port, "127.0.0.2"))
        await wait_until(lambda: refused("source_limit") == before["source_limit"] + 3, "per-source refusals")
        assert [await c.closed_by_server() for c in clients[2:]] == [True, True, True]
        assert table.counted == 2
        # Four more strangers, two each: the total of six is reached with the fourth connection.
        for n in range(3, 7):
            for _ in range(2):
                clients.append(await connect(port, f"127.0.0.{n}"))
        await wait_until(lambda: refused("total_limit") == before["total_limit"] + 4, "total refusals")
        assert [await c.closed_by_server() for c in clients[9:]] == [True] * 4
        assert table.counted == 6
        # Nothing that was kept saw its connection close.
        assert not any(c.reader.at_eof() for c in clients[:2] + clients[5:9])
        # The trunk is not held to the limits, and gets its answers.
        trunk = [await connect(port, TRUNK_IP) for _ in range(3)]
        clients.extend(trunk)
        for c in trunk:
            c.send(options(c))
        for c in trunk:
            line = await asyncio.wait_for(c.reader.readline(), WAIT)
            assert line.startswith(b"SIP/2.0 200 OK")
        assert (table.inbound, table.counted) == (9, 6)
        assert sample("orbit_sip_tcp_connections", direction="inbound") == 9
        # Closing a kept connection gives its slot back.
        clients[5].close()
        await wait_until(lambda: table.counted == 5, "a freed slot")
        late = await connect(port, "127.0.0.9")
        clients.append(late)
        assert not await late.closed_by_server(timeout=0.3)  # bounded: proves it was not refused at once
        assert table.counted == 6
    # Refusals are logged, but once per reason however many there were.
    refusals = [r for r in caplog.records if r.getMessage() == "sip tcp connection refused"]
    assert sorted(r.reason for r in refusals) == ["source_limit", "total_limit"]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING and r.suppressed == 0 for r in refusals)  # type: ignore[attr-defined]


async def test_trunks_only(clients: list[Client]) -> None:
    before = refused("not_trunk")
    async with sip_stack(TcpLimits(accept="trunks")) as stack:
        port = stack.tcp_port
        assert port is not None
        stranger = await connect(port, "127.0.0.2")
        trunk = await connect(port, TRUNK_IP)
        clients.extend([stranger, trunk])
        assert await stranger.closed_by_server()
        trunk.send(options(trunk))
        assert (await asyncio.wait_for(trunk.reader.readline(), WAIT)).startswith(b"SIP/2.0 200 OK")
    assert refused("not_trunk") == before + 1


async def test_outbound_connections_are_not_limited(clients: list[Client]) -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def far_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(far_end, "127.0.0.1", 0)
    far_port = server.sockets[0].getsockname()[1]
    async with server, sip_stack(TcpLimits(max_connections=1, max_per_source=1, accept="trunks")) as stack:
        port = stack.tcp_port
        assert port is not None
        clients.append(await connect(port, "127.0.0.2"))
        assert await clients[0].closed_by_server()  # no stranger gets in
        stack._transports.send(
            b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n", ("127.0.0.1", far_port), "tcp"
        )
        assert (await asyncio.wait_for(got.get(), WAIT)).startswith(b"OPTIONS sip:x SIP/2.0")


async def test_connections_without_sip_and_idle_ones_are_closed(
    clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = TcpLimits(first_message_timeout=0.5, idle_timeout=1.5)
    before = {r: closed(r) for r in ("no_sip", "idle")}
    async with sip_stack(limits) as stack:
        port = stack.tcp_port
        assert port is not None and stack.ua is not None
        loop = asyncio.get_running_loop()
        silent = await connect(port, "127.0.0.2")
        chatty = await connect(port, "127.0.0.3")  # bytes, but never a SIP message
        scanner = await connect(port, "127.0.0.4")  # valid SIP, but not from a trunk nor for a call
        answered = await connect(port, TRUNK_IP)  # one OPTIONS, then nothing
        pinging = await connect(port, TRUNK_IP)  # one OPTIONS, then RFC 5626 CRLF keep-alives
        with_call = await connect(port, TRUNK_IP)  # one OPTIONS, then nothing, but a call rests on it
        clients.extend([silent, chatty, scanner, answered, pinging, with_call])
        scanner.send(options(scanner))
        busy = {with_call.local}
        monkeypatch.setattr(stack.ua, "uses_tcp_peer", lambda peer: peer in busy)
        start = loop.time()
        for c in (answered, pinging, with_call):
            c.send(options(c))
            assert (await asyncio.wait_for(c.reader.readline(), WAIT)).startswith(b"SIP/2.0 200 OK")
        answered_at = loop.time()

        async def keep_alive(c: Client, stop: asyncio.Event) -> None:
            while not stop.is_set():
                c.send(b"\r\n\r\n")
                await asyncio.sleep(0.1)

        stop_chatty, stop_pinging = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(keep_alive(chatty, stop_chatty)),
            asyncio.create_task(keep_alive(pinging, stop_pinging)),
        ]
        try:
            # No SIP message within 0.5 s: closed, keep-alives or not.
            assert await silent.closed_by_server() and await chatty.closed_by_server()
            assert await scanner.closed_by_server() and bytes(scanner.received) == b""
            assert loop.time() - start >= limits.first_message_timeout
            stop_chatty.set()
            assert not any(c.reader.at_eof() for c in (answered, pinging, with_call))
            # 1.5 s without traffic: closed, unless a call rests on it or keep-alives come.
            assert await answered.closed_by_server()
            assert loop.time() - answered_at >= limits.idle_timeout
            assert not pinging.reader.at_eof() and not with_call.reader.at_eof()
            busy.clear()  # the call is over: the idle connection goes at its next check
            assert await with_call.closed_by_server()
            stop_pinging.set()
            assert await pinging.closed_by_server()
        finally:
            stop_chatty.set()
            stop_pinging.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert stack._transports._table.inbound == 0
    assert closed("no_sip") == before["no_sip"] + 3
    assert closed("idle") == before["idle"] + 3


async def test_an_unframeable_request_from_the_trunk_is_answered_then_closed(clients: list[Client]) -> None:
    before = closed("bad_stream")
    async with sip_stack(TcpLimits()) as stack:
        port = stack.tcp_port
        assert port is not None
        trunk = await connect(port, TRUNK_IP)
        stranger = await connect(port, "127.0.0.2")
        clients.extend([trunk, stranger])
        for c in (trunk, stranger):
            c.send(options(c).replace(b"Content-Length: 0\r\n", b""))  # a stream cannot be framed without it
        assert await trunk.closed_by_server() and await stranger.closed_by_server()
    assert bytes(trunk.received).startswith(
        b"SIP/2.0 400 Bad Request (missing Content-Length on a stream transport)\r\n"
    )
    assert bytes(stranger.received) == b""  # strangers learn nothing
    assert closed("bad_stream") == before + 2
