"""Asyncio SIP transports: one UDP socket and a TCP listener plus outbound TCP connections.

Thin on purpose: bytes in go to a callback with their source; bytes out go to an address.
Framing of TCP streams is done by the sans-I/O `StreamFramer`, and which TCP connections
are kept, for how long, by the sans-I/O `TcpConnections` (limits per source address and
in total, trunk-only mode, first-message and idle timeouts): the transport applies its
answers, counts them in the metrics and logs them at a bounded rate.

`on_data` returns True when the message was valid SIP its source may send us; only that
turns a new inbound connection into an established one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import resource
from collections.abc import Callable
from typing import Literal, Protocol, cast

from gateway.sip.connections import TcpConnections, TcpLimits, Throttle
from gateway.sip.errors import SipFramingError
from gateway.sip.framing import DEFAULT_MAX_MESSAGE_SIZE, StreamFramer

log = logging.getLogger("gateway.sip.transport")

Address = tuple[str, int]
Transport = Literal["udp", "tcp"]
OnData = Callable[[bytes, Address, Transport], bool]
OnError = Callable[[Address, Transport], None]
OnFramingError = Callable[[SipFramingError, Address], None]
InUse = Callable[[Address], bool]  # does a live call rest on the TCP connection with this peer?

MAX_DATAGRAM = 65535
# The same kind of connection event is logged at most once per this many seconds.
LOG_INTERVAL = 10.0
# File descriptors a node needs besides its inbound SIP connections (calls' RTP sockets,
# agents' websockets, the API, the database): below that a warning is logged at start.
FD_HEADROOM = 1024


def _nobody(ip: str) -> bool:
    return False


def _no_call(peer: Address) -> bool:
    return False


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class SipMetrics(Protocol):
    """What the SIP shell counts (``gateway.metrics.GatewayMetrics`` is one)."""

    def sip_response(self, code: int) -> None: ...

    def sip_tcp_connections(self, inbound: int, outbound: int) -> None: ...

    def sip_tcp_refused(self, reason: str) -> None: ...

    def sip_tcp_closed(self, reason: str) -> None: ...


class NoMetrics:
    """Counts nothing (tools and tests that do not look at metrics)."""

    def sip_response(self, code: int) -> None:
        return None

    def sip_tcp_connections(self, inbound: int, outbound: int) -> None:
        return None

    def sip_tcp_refused(self, reason: str) -> None:
        return None

    def sip_tcp_closed(self, reason: str) -> None:
        return None


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
        self.key = next(owner._keys)
        self.outbound = peer is not None
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.kept = False  # in the connection table: admitted and not closed yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have the stream API.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        if self.peer is None:
            name = transport.get_extra_info("peername")
            self.peer = (name[0], name[1])
        self.kept = self._owner._opened(self)
        if self.kept:
            self._owner._tcp[self.peer] = self
        else:
            transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self.kept:
            return
        assert self.peer is not None
        owner = self._owner
        owner._table.traffic(self.key, owner._now())
        try:
            messages = self._framer.feed(data)
        except SipFramingError:
            messages = []
        except Exception:  # a broken stream is closed, never allowed to crash the stack
            log.exception("tcp framing failed", extra={"peer": f"{self.peer[0]}:{self.peer[1]}"})
            self.close("bad_stream")
            return
        for message in messages:
            if owner._on_data(message, self.peer, "tcp"):
                owner._table.valid_message(self.key, owner._now())
        error = self._framer.error
        if error is not None and self.kept:
            # The user agent may still answer the broken request (400/513); close() sends that first.
            owner._on_framing_error(error, self.peer)
            owner._report("bad_stream", self.peer, logging.WARNING, error=str(error))
            self.close("bad_stream")

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self._owner._table.traffic(self.key, self._owner._now())

    def close(self, reason: str | None = None) -> None:
        """Close (pending writes are sent first); `reason` when the gateway itself decided to."""
        if reason is not None and self.kept:
            self._owner.metrics.sip_tcp_closed(reason)
        self._forget()
        if self.transport is not None:
            self.transport.close()

    def _forget(self) -> None:
        # The slot is free as soon as the close is decided, not when the socket is gone.
        if self.kept:
            self.kept = False
            self._owner._closed(self)


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
        *,
        tcp_limits: TcpLimits | None = None,
        is_trusted: Callable[[str], bool] = _nobody,
        in_use: InUse = _no_call,
        metrics: SipMetrics | None = None,
    ) -> None:
        self.host = host
        self.udp_port = udp_port
        self.tcp_port = tcp_port
        self.max_message_size = max_message_size
        self._on_data = on_data
        self._on_error = on_error
        self._on_framing_error = on_framing_error or (lambda error, peer: None)
        self.metrics: SipMetrics = metrics or NoMetrics()
        self._table = TcpConnections(tcp_limits or TcpLimits(), is_trusted)
        self._in_use = in_use
        self._throttle = Throttle(LOG_INTERVAL)
        self._keys = itertools.count()
        self._conns: dict[int, _TcpConnection] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tcp: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, asyncio.Task[None]] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._resolved: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
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
            self._check_fd_limit()
        limits = self._table.limits
        # Often enough that a timeout is kept to within a tenth of it (at most a second late).
        self._sweep_interval = min(1.0, max(0.05, min(limits.first_message_timeout, limits.idle_timeout) / 10))
        self._sweeper = loop.call_later(self._sweep_interval, self._sweep)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._connecting.values()) + list(self._tasks):
            task.cancel()
        for conn in list(self._conns.values()):
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

    # --- the TCP connection table -------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _opened(self, conn: _TcpConnection) -> bool:
        """A connection is up: keep it (True) or refuse it (False, the caller aborts it)."""
        assert conn.peer is not None
        if conn.outbound:
            self._table.opened(conn.key, conn.peer, self._now())
        else:
            refusal = self._table.admit(conn.key, conn.peer, self._now())
            if refusal is not None:
                self.metrics.sip_tcp_refused(refusal)
                self._report(refusal, conn.peer, logging.WARNING, refused=True)
                return False
        self._conns[conn.key] = conn
        self._count()
        return True

    def _closed(self, conn: _TcpConnection) -> None:
        self._table.closed(conn.key)
        self._conns.pop(conn.key, None)
        if conn.peer is not None and self._tcp.get(conn.peer) is conn:
            del self._tcp[conn.peer]
        self._count()

    def _sweep(self) -> None:
        assert self._loop is not None
        self._sweeper = self._loop.call_later(self._sweep_interval, self._sweep)
        try:
            due = self._table.expire(self._now(), self._in_use)
        except Exception:  # the in_use callback is the user agent's: never let it stop the sweeps
            log.exception("sip tcp sweep failed")
            return
        for key, reason in due:
            conn = self._conns.get(cast(int, key))
            if conn is None:
                self._table.closed(key)
                continue
            assert conn.peer is not None
            self._report(reason, conn.peer, logging.WARNING if reason == "no_sip" else logging.INFO)
            conn.close(reason)

    def _count(self) -> None:
        self.metrics.sip_tcp_connections(self._table.inbound, self._table.outbound)

    def _report(self, reason: str, peer: Address, level: int, *, refused: bool = False, **extra: str) -> None:
        """Log a refusal or close, at most once per reason every LOG_INTERVAL seconds."""
        event = "sip tcp connection refused" if refused else "sip tcp connection closed"
        held = self._throttle.report(f"{event}:{reason}", self._now())
        if held is not None:
            log.log(
                level,
                event,
                extra={"reason": reason, "peer": f"{peer[0]}:{peer[1]}", "suppressed": held, **extra},
            )

    def _check_fd_limit(self) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self._table.limits.max_connections + FD_HEADROOM
        if soft != resource.RLIM_INFINITY and soft < wanted:
            log.warning(
                "file descriptor limit is low for the sip tcp connection limit",
                extra={"nofile": soft, "tcp_max_connections": self._table.limits.max_connections, "wanted": wanted},
            )

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
