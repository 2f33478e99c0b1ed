"""The call store on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from gateway.calls.views import call_view
from gateway.config import Settings
from gateway.ids import new_call_id
from gateway.outcome import CallStatus
from gateway.store.calls import CallStore
from gateway.store.commit import group_commit
from gateway.store.db import create_engine, migrate, session_factory
from gateway.store.records import Call, ListFilters
from tests.conftest import base_config, open_client
from tests.support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return await server.fresh_database()


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[CallStore]:
    engine = create_engine(db_url)
    await migrate(engine)
    sessions = session_factory(engine)
    writes = group_commit(engine, sessions)
    yield CallStore(sessions, writes, lambda call: [call.webhook_url] if call.webhook_url else [], render=call_view)
    await writes.close()
    await engine.dispose()


def _call(created: datetime | None = None, **kw: object) -> Call:
    values: dict = dict(
        id=new_call_id(), account_id="acct_a", to="+14155552671", from_="+12025551234", agent_id=None,
        status=CallStatus.INITIATING, record=False, max_duration=3600, metadata={"k": "v\u00e9"},
        webhook_url=None, created_at=created or datetime.now(UTC),
    )
    values.update(kw)
    return Call(**values)


async def test_migrations_create_schema_and_are_idempotent(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    await migrate(engine)  # a second start (or a second node) changes nothing
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert {"calls", "call_events", "webhook_deliveries", "gateway_secrets", "alembic_version"} <= tables


async def test_nodes_starting_together_migrate_once(postgres: PostgresServer) -> None:
    """Three gateway processes migrate one fresh PostgreSQL database at the same moment."""
    import subprocess
    import sys

    url = await postgres.fresh_database()
    code = (
        "import asyncio, sys\n"
        "from gateway.store.db import create_engine, migrate\n"
        "async def main():\n"
        "    e = create_engine(sys.argv[1]); await migrate(e); await e.dispose()\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert all(rc == 0 for rc, _ in results), results


async def test_round_trip(store: CallStore) -> None:
    created = datetime(2026, 3, 8, 11, 0, 0, 123456, tzinfo=UTC)
    call = await store.insert(_call(created, webhook_url="https://example.com/h", record=True))
    got = await store.get(call.id)
    assert got is not None
    assert got.created_at == created and got.created_at.tzinfo is not None
    assert got.metadata == {"k": "v\u00e9"}
    assert got.status is CallStatus.INITIATING
    assert await store.get(call.id, account_id="acct_other") is None


async def test_transitions_follow_the_table(store: CallStore) -> None:
    call = await store.insert(_call())
    now = datetime.now(UTC)
    assert await store.transition(call.id, CallStatus.COMPLETED, now) is None  # not from initiating
    ringing = await store.transition(call.id, CallStatus.RINGING, now, sip_status=180)
    assert ringing is not None and ringing.ringing_at == now and ringing.sip_status == 180
    answered = await store.transition(call.id, CallStatus.IN_PROGRESS, now + timedelta(seconds=8))
    assert answered is not None and answered.answered_at == now + timedelta(seconds=8)
    done = await store.transition(call.id, CallStatus.COMPLETED, now + timedelta(seconds=185), hangup_cause="x")
    assert done is not None and done.ended_at == now + timedelta(seconds=185)
    for target in CallStatus:
        assert await store.transition(call.id, target, now) is None
    events = await store.events(call.id)
    assert [e.type for e in events] == ["call.initiated", "call.ringing", "call.answered", "call.completed"]
    assert [e.seq for e in events] == [1, 2, 3, 4]


async def test_racing_transitions_have_one_winner(store: CallStore) -> None:
    for _ in range(5):
        call = await store.insert(_call())
        now = datetime.now(UTC)
        results = await asyncio.gather(
            store.transition(call.id, CallStatus.IN_PROGRESS, now),
            store.transition(call.id, CallStatus.CANCELLED, now),
            store.transition(call.id, CallStatus.FAILED, now),
        )
        winners = [r for r in results if r is not None]
        final = await store.get(call.id)
        assert final is not None
        if winners[0].status is CallStatus.IN_PROGRESS:
            # answered first; failed may then follow legally
            assert final.status in (CallStatus.IN_PROGRESS, CallStatus.FAILED)
        else:
            assert len(winners) == 1 and final.status is winners[0].status
        events = await store.events(call.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_writes_queued_together_commit_together_and_one_bad_write_sinks_no_other(store: CallStore) -> None:
    taken = await store.insert(_call())
    fresh = [_call() for _ in range(20)]
    duplicate = _call(id=taken.id)  # the primary key is taken: this write must fail alone
    batches = store._writes.batches
    results = await asyncio.gather(
        *(store.insert(c) for c in fresh[:10]),
        store.insert(duplicate),
        *(store.insert(c) for c in fresh[10:]),
        return_exceptions=True,
    )
    assert store._writes.batches - batches <= 2  # they went in together, and were sorted out there
    assert isinstance(results[10], IntegrityError), results[10]
    assert not [r for i, r in enumerate(results) if i != 10 and isinstance(r, BaseException)]
    for c in fresh:
        got = await store.get(c.id)
        assert got is not None and got.to == c.to
        assert [e.type for e in await store.events(c.id)] == ["call.initiated"]
    kept = await store.get(taken.id)
    assert kept is not None and kept.created_at == taken.created_at  # the first insert is untouched
    assert len(await store.events(taken.id)) == 1


async def test_outbox_rows_for_webhook_targets(store: CallStore) -> None:
    call = await store.insert(_call(webhook_url="https://example.com/h"))
    await store.transition(call.id, CallStatus.RINGING, datetime.now(UTC))
    from sqlalchemy import select

    from gateway.store.models import DeliveryRow

    async with store._sessions() as s:
        rows = (await s.execute(select(DeliveryRow).order_by(DeliveryRow.seq))).scalars().all()
    assert [(r.seq, r.url, r.state) for r in rows] == [(1, "https://example.com/h", "pending"),
                                                       (2, "https://example.com/h", "pending")]


async def test_keyset_pages_with_equal_timestamps(store: CallStore) -> None:
    same = datetime(2026, 1, 1, tzinfo=UTC)
    ids = {(await store.insert(_call(same))).id for _ in range(7)}
    ids |= {(await store.insert(_call(same + timedelta(seconds=i)))).id for i in range(5)}
    seen: list[str] = []
    after = None
    while True:
        page = await store.page("acct_a", ListFilters(), after, 3)
        seen += [c.id for c in page.calls]
        assert page.total == 12
        if not page.has_more:
            break
        after = page.after
    assert len(seen) == 12 and set(seen) == ids


async def test_secret_is_created_once(store: CallStore) -> None:
    a, b = await asyncio.gather(store.secret("signing_key"), store.secret("signing_key"))
    assert a == b and len(a) == 64
    assert await store.secret("signing_key") == a


async def test_api_pagination_on_this_database(db_url: str, tmp_path: Path) -> None:
    settings = Settings(**base_config(db_url, tmp_path))
    async for api in open_client(settings):
        made = set()
        for i in range(120):
            made.add((await api.create(to=f"+1415555{i:04d}")).json()["data"]["id"])
        seen: list[str] = []
        cursor = None
        while True:
            q: dict = {"limit": 11}
            if cursor:
                q["cursor"] = cursor
            body = (await api.get("/v1/voice/calls", **q)).json()
            seen += [c["id"] for c in body["data"]]
            cursor = body["meta"]["pagination"]["cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 120 and set(seen) == made


async def test_what_is_stored_is_always_valid_json(store: CallStore) -> None:
    """A measurement that came out non-finite, or a carrier's reason phrase in broken UTF-8,
    is repaired on the way in, never allowed to fail the write (both databases)."""
    call = await store.insert(_call(webhook_url="https://example.com/hook"))
    ended = await store.transition(
        call.id,
        CallStatus.FAILED,
        datetime.now(UTC),
        media_stats={"jitter_ms": float("nan"), "mos": float("inf"), "packets": 5},
        agent_summary={"note": "bad \udcff byte"},
    )
    assert ended is not None
    got = await store.get(call.id)
    assert got is not None
    assert got.media_stats == {"jitter_ms": None, "mos": None, "packets": 5}
    assert got.agent_summary is not None and got.agent_summary["note"].startswith("bad ")
    payloads = [e.payload for e in await store.events(call.id)]
    assert payloads[-1]["data"]["media_stats"]["jitter_ms"] is None


async def test_a_trunk_full_of_live_calls_refuses_the_next_in_the_same_transaction(store: CallStore) -> None:
    """Admission is counted where the call is stored: live calls of the trunk, on any node."""
    from gateway.store.calls import TrunkFull

    calls = [_call(trunk_id="t1") for _ in range(5)]
    results = await asyncio.gather(*(store.insert(c, trunk_capacity=3) for c in calls), return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, TrunkFull)) == 2
    assert all(isinstance(r, Call | TrunkFull) for r in results)
    stored = [c for c, r in zip(calls, results, strict=True) if not isinstance(r, TrunkFull)]
    assert len(await store.active()) == 3
    # Another trunk is not counted; an ended call frees its place.
    await store.insert(_call(trunk_id="t2"), trunk_capacity=1)
    await store.transition(stored[0].id, CallStatus.FAILED, datetime.now(UTC))
    await store.insert(_call(trunk_id="t1"), trunk_capacity=3)
    with pytest.raises(TrunkFull):
        await store.insert(_call(trunk_id="t1"), trunk_capacity=3)
