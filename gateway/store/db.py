"""Database engine and migrations (applied at start, under a lock on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from gateway import jsonutil

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant so that nodes starting together migrate one at a time.
_PG_MIGRATION_LOCK = 7_430_112


def sqlite_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    """Set on every new SQLite connection (a "connect" event listener)."""
    cur = dbapi_conn.cursor()
    # WAL lets readers go on while a call's status is written; foreign keys for cascades.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str) -> AsyncEngine:
    """The store's engine. JSON columns are written strictly (`gateway.jsonutil`): what is
    stored is always valid JSON, whatever a measurement or a carrier's text came to."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, json_serializer=jsonutil.dumps)

        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=jsonutil.dumps
    )


class _OneWriterAtATime(async_sessionmaker[AsyncSession]):
    """SQLite has a single writer. Write transactions (``begin()``) that race for its lock
    wait in SQLite's busy handler, which sleeps up to 100 ms a try while holding a pooled
    connection: under load that convoy starved the pool (set-up at 20 calls/s collapsed).
    Here they queue on an asyncio lock instead and each runs alone; reads do not queue.
    The busy writers (calls, events, webhook deliveries) go through the group commit
    (gateway/store/commit.py) instead; what is left here is start-up work."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    def begin(self) -> Any:
        return self._serialized_begin()

    @asynccontextmanager
    async def _serialized_begin(self) -> AsyncIterator[AsyncSession]:
        async with self._write_lock, super().begin() as session:
            yield session


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name == "sqlite":
        return _OneWriterAtATime(engine)
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    command.upgrade(cfg, "head")


_migrating = asyncio.Lock()


async def migrate(engine: AsyncEngine) -> None:
    # Alembic keeps its context in module globals: one migration at a time per process.
    # Across processes, PostgreSQL's advisory lock (in _upgrade) serializes the nodes.
    async with _migrating, engine.begin() as conn:
        await conn.run_sync(_upgrade)
