"""Asyncio SIP transports: one UDP socket and a TCP listener plus outbound TCP connections.

Thin on purpose: bytes in go to a callback with their source; bytes out go to an address.
Framing of TCP streams is done by the sans-I/O `StreamFramer`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import Literal, cast

from gateway.sip.errors import SipFramingError
from gateway.sip.framing import DEFAULT_MAX_MESSAGE_SIZE, StreamFramer

log = logging.getLogger("gateway.sip.transport")

Address = tuple[str, int]
Transport = Literal["udp", "tcp"]
OnData = Callable[[bytes, Address, Transport], None]
OnError = Callable[[Address, Transport], None]
OnFramingError = Callable[[SipFramingError, Address], None]

MAX_DATAGRAM = 65535


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_data: OnData) -> None:
        self._on_data = on_data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._on_data(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction timers take care of it.
        log.debug("udp error", extra={"error": str(exc)})


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransports, peer: Address | None = None) -> None:
        self._owner = owner
        self._framer = StreamFramer(owner.max_message_size)
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have the stream API.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        if self.peer is None:
            name = transport.get_extra_info("peername")
            self.peer = (name[0], name[1])
        self._owner._tcp[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            messages = self._framer.feed(data)
        except SipFramingError:
            messages = []
        except Exception:  # a broken stream is closed, never allowed to crash the stack
            log.exception("tcp framing failed", extra={"peer": f"{self.peer[0]}:{self.peer[1]}"})
            self.close()
            return
        for message in messages:
            self._owner._on_data(message, self.peer, "tcp")
        error = self._framer.error
        if error is not None:
            # The user agent may still answer the broken request (400/513); close() sends that first.
            self._owner._on_framing_error(error, self.peer)
            log.warning(
                "closing tcp connection with unframeable data",
                extra={"peer": f"{self.peer[0]}:{self.peer[1]}", "error": str(error)},
            )
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self._owner._tcp.get(self.peer) is self:
            del self._owner._tcp[self.peer]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SipTransports:
    """The gateway's SIP sockets. `send` never blocks and never raises; failures come back via `on_error`."""

    def __init__(
        self,
        host: str,
        udp_port: int | None,
        tcp_port: int | None,
        on_data: OnData,
        on_error: OnError,
        on_framing_error: OnFramingError | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.host = host
        self.udp_port = udp_port
        self.tcp_port = tcp_port
        self.max_message_size = max_message_size
        self._on_data = on_data
        self._on_error = on_error
        self._on_framing_error = on_framing_error or (lambda error, peer: None)
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tcp: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, asyncio.Task[None]] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._resolved: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.udp_port is not None:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self._on_data), local_addr=(self.host, self.udp_port)
            )
            self._udp = transport
            self.udp_port = transport.get_extra_info("sockname")[1]
        if self.tcp_port is not None:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self), host=self.host, port=self.tcp_port, reuse_address=True
            )
            self.tcp_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._connecting.values()) + list(self._tasks):
            task.cancel()
        for conn in list(self._tcp.values()):
            conn.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._udp is not None:
            self._udp.close()

    def send(self, data: bytes, destination: Address, transport: Transport) -> None:
        host, port = destination
        if not is_ip(host):
            cached = self._resolved.get(host)
            if cached is None:
                self._spawn(self._resolve_then_send(data, destination, transport))
                return
            host = cached
        dest = (host.strip("[]"), port)
        if transport == "udp":
            if self._udp is None:
                self._on_error(destination, transport)
                return
            self._udp.sendto(data, dest)
            return
        conn = self._tcp.get(dest)
        if conn is not None:
            conn.write(data)
            return
        self._pending.setdefault(dest, []).append(data)
        if dest not in self._connecting:
            self._connecting[dest] = asyncio.get_running_loop().create_task(self._connect(dest))

    async def _connect(self, dest: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _TcpConnection(self, dest), dest[0], dest[1]), timeout=10
            )
        except (OSError, TimeoutError) as exc:
            log.warning("tcp connect failed", extra={"peer": f"{dest[0]}:{dest[1]}", "error": str(exc)})
            self._pending.pop(dest, None)
            self._on_error(dest, "tcp")
            return
        finally:
            self._connecting.pop(dest, None)
        for data in self._pending.pop(dest, []):
            conn.write(data)

    async def _resolve_then_send(self, data: bytes, destination: Address, transport: Transport) -> None:
        host, port = destination
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, family=0, proto=0)
        except OSError:
            self._on_error(destination, transport)
            return
        self._resolved[host] = str(infos[0][4][0])
        self.send(data, (self._resolved[host], port), transport)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
