"""Wake-ups between nodes: PostgreSQL LISTEN/NOTIFY on one channel per node.

A notification only says "look now"; what to do is always read from a table, so a lost
notification (a connection that dropped, a node that was restarting) costs a poll interval,
never a request. On SQLite (one node) there is nobody to notify: `Silent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("gateway.store.notify")


def channel_for(node_id: str) -> str:
    """A channel name PostgreSQL accepts (at most 63 bytes) for any node id."""
    return "orbit_node_" + hashlib.blake2b(node_id.encode(), digest_size=8).hexdigest()


class Notifier(Protocol):
    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None: ...

    async def notify(self, channel: str, payload: str) -> None: ...

    async def close(self) -> None: ...


class Silent:
    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None:
        return None

    async def notify(self, channel: str, payload: str) -> None:
        return None

    async def close(self) -> None:
        return None


class PgNotifier:
    """One dedicated asyncpg connection for LISTEN (re-opened when it drops) and short-lived
    use of it for NOTIFY."""

    def __init__(self, database_url: str, *, retry_seconds: float = 1.0) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._retry = retry_seconds
        self._conn: Any = None
        self._listening: dict[str, Callable[[str], None]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> None:
        self._listening[channel] = on_notify
        await self._connect()
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def notify(self, channel: str, payload: str) -> None:
        try:
            await self._connect()
            async with self._lock:
                await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The request is in its table: the peer's poll finds it.
            log.warning("notification not sent", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(BaseException):
                await self._keeper
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = await asyncpg.connect(self._dsn)
            for channel, callback in self._listening.items():
                await self._conn.add_listener(channel, _deliver(callback))

    async def _keep(self) -> None:
        """Re-open the listening connection when it drops (the poll covers the gap)."""
        while True:
            await asyncio.sleep(self._retry)
            if self._conn is None or self._conn.is_closed():
                try:
                    await self._connect()
                    log.info("listening again for notifications")
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("cannot listen for notifications yet", extra={"error": type(exc).__name__})


def _deliver(callback: Callable[[str], None]) -> Callable[..., None]:
    def on_notification(connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            callback(payload)
        except Exception:
            log.exception("notification handler failed")

    return on_notification
