"""Reaching the agent: one connection attempt, and reconnection within a budget.

:class:`AgentConnector` opens an :class:`~media.agent.websocket.AgentSocket` to an
:class:`~media.agent.endpoint.AgentEndpoint`: TCP (TLS for ``wss://``), then the
websocket handshake, all within ``connect_timeout_seconds``. Every way that can
fail becomes :class:`AgentUnavailable` with a ``reason`` call control can act on.

After a drop, :meth:`AgentConnector.reconnect` tries again as long as the
:class:`ReconnectBudget` allows: ``reconnect_attempts`` attempts, waiting 0, 0.2,
0.5, 1 then 2 s before each; the budget is restored once a connection has stayed
up for 30 s. The budget is sans-I/O (it is told how long a connection lasted);
the connector takes its clock and its ``sleep`` as arguments, so tests can drive
the backoff with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from media.agent.endpoint import AgentEndpoint
from media.agent.websocket import AgentSocket, SocketOptions

__all__ = ["BACKOFF_S", "STABLE_S", "AgentConnector", "AgentUnavailable", "ReconnectBudget"]

log = logging.getLogger("media.agent.connection")

BACKOFF_S: Final = (0.0, 0.2, 0.5, 1.0, 2.0)
STABLE_S: Final = 30.0


class AgentUnavailable(Exception):
    """The agent could not be reached: ``reason`` is timeout, refused, http_error,
    handshake_failed, tls, dns, network, stopped or lost."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"agent unavailable ({reason}){': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


class ReconnectBudget:
    """How many reconnection attempts are left, and how long to wait before the next one."""

    def __init__(self, attempts: int, backoff: Sequence[float] = BACKOFF_S, stable_s: float = STABLE_S) -> None:
        if attempts < 0 or not backoff:
            raise ValueError("attempts must not be negative and backoff must not be empty")
        self.attempts = attempts
        self.backoff = tuple(backoff)
        self.stable_s = stable_s
        self.used = 0

    def next_delay(self) -> float | None:
        """Take one attempt: the seconds to wait before it, or None when the budget is spent."""
        if self.used >= self.attempts:
            return None
        delay = self.backoff[min(self.used, len(self.backoff) - 1)]
        self.used += 1
        return delay

    def connection_lasted(self, seconds: float) -> None:
        """A connection dropped after ``seconds``: a stable one earns the whole budget back."""
        if seconds >= self.stable_s:
            self.used = 0


class AgentConnector:
    """Opens connections to one agent for one call; see the module docstring."""

    def __init__(
        self,
        endpoint: AgentEndpoint,
        *,
        call_id: str,
        subprotocol: str | None,
        options: SocketOptions = SocketOptions(),
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.call_id = call_id
        self.budget = ReconnectBudget(endpoint.reconnect_attempts)
        self._subprotocols = [Subprotocol(subprotocol)] if subprotocol else None
        self._options = options
        self._ssl_context = ssl_context
        self._clock = clock
        self._sleep = sleep

    async def open(self) -> AgentSocket:
        """One attempt: the open socket, or :class:`AgentUnavailable`."""
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        try:
            uri = parse_uri(endpoint.url)
        except InvalidURI as exc:
            raise AgentUnavailable("handshake_failed", str(exc)) from None
        ssl_ctx: ssl.SSLContext | None = None
        if uri.secure:
            ssl_ctx = self._ssl_context or ssl.create_default_context()
        sock: AgentSocket | None = None

        def factory() -> AgentSocket:
            nonlocal sock
            sock = AgentSocket(
                uri,
                subprotocols=self._subprotocols,
                headers=dict(endpoint.headers),
                options=self._options,
                clock=self._clock,
            )
            return sock

        timeout = endpoint.connect_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    factory,
                    uri.host,
                    uri.port,
                    ssl=ssl_ctx,
                    server_hostname=uri.host if ssl_ctx is not None else None,
                )
                assert sock is not None
                await sock.opened
        except TimeoutError:
            if sock is not None:
                sock.abort()
            raise AgentUnavailable("timeout", f"no handshake within {timeout:g} s") from None
        except asyncio.CancelledError:
            if sock is not None:
                sock.abort()
            raise
        except InvalidStatus as exc:
            raise AgentUnavailable("http_error", f"HTTP {exc.response.status_code}") from None
        except InvalidHandshake as exc:
            raise AgentUnavailable("handshake_failed", str(exc)) from None
        except ssl.SSLError as exc:
            raise AgentUnavailable("tls", str(exc)) from None
        except ConnectionRefusedError as exc:
            raise AgentUnavailable("refused", str(exc)) from None
        except socket.gaierror as exc:
            raise AgentUnavailable("dns", str(exc)) from None
        except (OSError, ConnectionError) as exc:
            raise AgentUnavailable("network", str(exc)) from None
        assert sock is not None
        return sock

    def dropped(self, sock: AgentSocket) -> None:
        """``sock`` dropped mid-call: a connection that stayed up long enough restores the budget."""
        self.budget.connection_lasted(self._clock() - sock.opened_at)

    async def reconnect(self, on_attempt: Callable[[], None]) -> AgentSocket | None:
        """Attempts within the budget (``on_attempt`` before each): the new socket, or None
        once the budget is spent."""
        while (delay := self.budget.next_delay()) is not None:
            on_attempt()
            if delay:
                await self._sleep(delay)
            try:
                return await self.open()
            except AgentUnavailable as exc:
                log.warning(
                    "agent reconnect failed",
                    extra={
                        "agent_id": self.endpoint.id,
                        "call_id": self.call_id,
                        "reason": exc.reason,
                        "detail": exc.detail,
                    },
                )
        return None
