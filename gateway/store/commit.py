"""Group commit: the store's writes applied many to a transaction.

Under load every call writes a handful of small transactions (created, ringing, answered,
ended, recording ready, webhook results). Applied one at a time, each pays a commit and,
through an async driver, an event-loop round trip per statement; with SQLite they also
take turns on its single write lock. At 20 new calls/s with 100 calls streaming, those
round trips through a busy loop, not the database, made POSTs wait for seconds.

Here a write is a plain function of a synchronous SQLAlchemy `Session`. Writes queue;
one writer task applies everything queued in one transaction, in the order it was
queued, and each caller gets its own write's result or error. While one batch commits
the next fills, so batches grow with the load and the cost per write falls.

Where the database is a SQLite file, the batch runs on a thread of its own with the
stdlib driver: one hop off the event loop per batch, not one per statement. Elsewhere
(PostgreSQL) it runs through the async session's `run_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from gateway import jsonutil
from gateway.store.db import sqlite_pragmas

log = logging.getLogger("gateway.store")

T = TypeVar("T")
Write = Callable[[Session], Any]
# What one write came to: its result, or the exception it raised.
Outcome = tuple[bool, Any]
Applier = Callable[[Sequence[Write]], Awaitable[list[Outcome]]]

MAX_BATCH = 256
# The database itself is unavailable (locked for too long, connection lost, pool empty):
# every write of the batch fails with it, and no write is retried alone.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def apply_batch(session: Session, writes: Sequence[Write]) -> list[Outcome]:
    """Apply `writes` in one transaction. If one of them fails, the transaction is rolled
    back and each write is applied alone, so one bad write does not sink the others."""
    try:
        with session.begin():
            results = [write(session) for write in writes]
        return [(True, r) for r in results]
    except _UNAVAILABLE:
        raise
    except Exception as exc:
        if len(writes) == 1:
            return [(False, exc)]
    outcomes: list[Outcome] = []
    for write in writes:
        try:
            with session.begin():
                outcomes.append((True, write(session)))
        except _UNAVAILABLE:
            raise
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


class GroupCommit:
    """Queue of writes with one writer task applying them in batches."""

    def __init__(self, applier: Applier, close: Callable[[], None] | None = None) -> None:
        self._apply = applier
        self._close = close
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def run(self, write: Callable[[Session], T]) -> T:
        """Apply `write` (in some batch) and return its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def execute(self, stmt: Executable) -> None:
        """Apply one statement (in some batch); returns once committed."""

        def write(s: Session) -> None:
            s.execute(stmt)

        await self.run(write)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            try:
                outcomes = await self._apply([write for write, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.batches += 1
            self.writes += len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # the caller gave up waiting; the write stands
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(BaseException):
                await self._writer
        if self._close is not None:
            self._close()


def group_commit(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> GroupCommit:
    """The store's writer for `engine`'s database."""
    parsed = engine.url
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        sync_engine = create_engine(
            parsed.set(drivername="sqlite+pysqlite"),
            # The one writer thread keeps one connection; waits for a lock held by another
            # process (a second node on the same file) up to 30 s, off the event loop.
            connect_args={"timeout": 30, "check_same_thread": False},
            json_serializer=jsonutil.dumps,
        )
        event.listen(sync_engine, "connect", sqlite_pragmas)
        factory = sessionmaker(sync_engine, expire_on_commit=False)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")

        def apply_in_thread(writes: Sequence[Write]) -> list[Outcome]:
            with factory() as session:
                return apply_batch(session, writes)

        async def apply_sqlite(writes: Sequence[Write]) -> list[Outcome]:
            return await asyncio.get_running_loop().run_in_executor(thread, apply_in_thread, writes)

        def close() -> None:
            thread.shutdown(wait=True)
            sync_engine.dispose()

        return GroupCommit(apply_sqlite, close)

    async def apply_async(writes: Sequence[Write]) -> list[Outcome]:
        async with sessions() as session:
            return await session.run_sync(apply_batch, writes)

    return GroupCommit(apply_async)
