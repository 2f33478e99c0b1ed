"""Webhook delivery from the outbox to a real HTTP receiver: signatures, order, retries, 410, SSRF, restarts."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy import text as sa_text

from gateway.calls.views import call_view
from gateway.config import Settings
from gateway.ids import new_call_id, new_event_id, new_id
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallStatus
from gateway.store.calls import CallStore
from gateway.store.commit import group_commit
from gateway.store.db import create_engine, migrate, session_factory
from gateway.store.models import CallRow, DeliveryRow, EventRow
from gateway.store.records import Call
from gateway.timeutil import iso
from gateway.webhooks.delivery import WebhookDispatcher
from gateway.webhooks.signing import verify
from tests.support.postgres import PostgresServer
from tests.support.receiver import WebhookReceiver

SECRET = "whsec_test_secret"


def _settings(allow_private: bool = True, schedule: list[float] | None = None) -> Settings:
    return Settings(
        accounts=[{"id": "acct_a", "api_keys": ["dv_test_sk_0123456789abcdef"], "numbers": ["+12025551234"],
                   "webhook_secret": SECRET}],
        webhooks={"allow_private_targets": allow_private, "timeout_seconds": 2,
                  "retry_schedule_seconds": schedule or [0, 0.2, 0.2, 0.2]},
    )


class Env:
    def __init__(self, tmp: Path, url: str | None = None) -> None:
        self.engine = create_engine(url or f"sqlite+aiosqlite:///{tmp}/wh.db")
        self.sessions = session_factory(self.engine)
        self.writes = group_commit(self.engine, self.sessions)
        self.store = CallStore(
            self.sessions, self.writes, lambda c: [c.webhook_url] if c.webhook_url else [], render=call_view
        )

    async def call(self, url: str) -> Call:
        call = Call(id=new_call_id(), account_id="acct_a", to="+14155552671", from_="+12025551234", agent_id=None,
                    status=CallStatus.INITIATING, record=False, max_duration=60, metadata={}, webhook_url=url,
                    created_at=datetime.now(UTC))
        return await self.store.insert(call)

    async def lifecycle(self, call: Call) -> None:
        now = datetime.now(UTC)
        await self.store.transition(call.id, CallStatus.RINGING, now)
        await self.store.transition(call.id, CallStatus.IN_PROGRESS, now)
        await self.store.transition(call.id, CallStatus.COMPLETED, now)

    async def deliveries(self, call_id: str) -> list[DeliveryRow]:
        async with self.sessions() as s:
            stmt = select(DeliveryRow).where(DeliveryRow.call_id == call_id).order_by(DeliveryRow.seq)
            return list((await s.execute(stmt)).scalars().all())

    async def insert_ringing_event(self, call: Call, data: dict[str, Any]) -> None:
        """Write a `call.ringing` event row and its delivery directly, as an older version may have."""
        now = datetime.now(UTC)
        event_id = new_event_id()
        payload = {"id": event_id, "type": "call.ringing", "created_at": iso(now), "data": data}
        async with self.sessions.begin() as s:
            s.add(EventRow(id=event_id, call_id=call.id, account_id=call.account_id, seq=2, type="call.ringing",
                           created_at=now, payload={}))
            await s.flush()
            # As an older version's serializer wrote it (json.dumps, which writes NaN as is).
            await s.execute(sa_text("UPDATE call_events SET payload = :p WHERE id = :id"),
                            {"p": json.dumps(payload), "id": event_id})
            s.add(DeliveryRow(delivery_id=new_id("dlv"), event_id=event_id, call_id=call.id, seq=2,
                              url=call.webhook_url, state="pending", attempts=0, next_attempt_at=now))
            await s.execute(update(CallRow).where(CallRow.id == call.id).values(status="ringing", event_seq=2))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    await migrate(e.engine)
    yield e
    await e.writes.close()
    await e.engine.dispose()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    yield r
    await r.stop()


async def _drain(d: WebhookDispatcher, until, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await d.run_once()
        if until():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def _settle(d: WebhookDispatcher, env: Env, call_id: str, timeout: float = 10.0) -> list[DeliveryRow]:
    """Run the dispatcher until none of the call's deliveries is pending; then none can be attempted again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await d.run_once()
        rows = await env.deliveries(call_id)
        if all(r.state != "pending" for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries still pending")


METRICS = GatewayMetrics(process_metrics=False)


def _dispatcher(env: Env, settings: Settings, **kw: Any) -> WebhookDispatcher:
    return WebhookDispatcher(env.sessions, env.writes, settings.webhooks, settings.accounts, metrics=METRICS, **kw)


def _delivery_count(result: str) -> float:
    value = METRICS.registry.get_sample_value("orbit_webhook_deliveries_total", {"result": result})
    return value or 0.0


async def test_signed_events_arrive_in_order(env: Env, receiver: WebhookReceiver) -> None:
    call = await env.call(receiver.url)
    await env.lifecycle(call)
    d = _dispatcher(env, _settings())
    await _drain(d, lambda: len(receiver.received) == 4)
    await d.stop()
    types = [r.json["type"] for r in receiver.received]
    assert types == ["call.initiated", "call.ringing", "call.answered", "call.completed"]
    for r in receiver.received:
        body = r.json
        assert set(body) == {"id", "type", "created_at", "data"}
        assert body["id"].startswith("evt_") and body["data"]["id"] == call.id
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.headers["user-agent"] == "Devotel-Webhooks/1.0"
        assert r.headers["x-devotel-event-id"] == body["id"]
        assert r.headers["x-devotel-event-type"] == body["type"]
        assert r.headers["x-devotel-delivery-id"].startswith("dlv_")
        assert verify(SECRET, r.headers["x-devotel-signature"], r.body, int(time.time()))
        assert not verify("whsec_other", r.headers["x-devotel-signature"], r.body, int(time.time()))
    assert [r.json["data"]["status"] for r in receiver.received] == ["initiating", "ringing", "in_progress", "completed"]


async def test_receiver_down_then_up_gets_everything_in_order_with_same_ids(env: Env, receiver: WebhookReceiver) -> None:
    calls = [await env.call(receiver.url) for _ in range(3)]
    for c in calls:
        await env.lifecycle(c)
    receiver.status = 503
    d = _dispatcher(env, _settings(schedule=[0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]))
    await _drain(d, lambda: len(receiver.received) >= 6)
    failed_ids = {r.json["id"] for r in receiver.received}
    receiver.status = 200
    ok_before = len(receiver.received)
    await _drain(d, lambda: sum(1 for r in receiver.received[ok_before:]) >= 12)
    await d.stop()
    delivered = receiver.received[ok_before:]
    for c in calls:
        mine = [r.json for r in delivered if r.json["data"]["id"] == c.id]
        assert [m["type"] for m in mine] == ["call.initiated", "call.ringing", "call.answered", "call.completed"]
    # Retries carry the same event ids that failed before.
    assert failed_ids <= {r.json["id"] for r in delivered}


async def test_410_stops_retrying(env: Env, receiver: WebhookReceiver) -> None:
    call = await env.call(receiver.url)
    await env.lifecycle(call)
    receiver.status = 410
    d = _dispatcher(env, _settings())
    rows = await _settle(d, env, call.id)  # until nothing of the call's is pending
    assert await d.run_once() == 0
    await d.stop()
    assert len(receiver.received) == 1
    assert [(r.state, r.attempts) for r in rows] == [("dead", 1), ("dead", 0), ("dead", 0), ("dead", 0)]


async def test_dead_letter_after_schedule(env: Env, receiver: WebhookReceiver) -> None:
    call = await env.call(receiver.url)
    receiver.status = 500
    d = _dispatcher(env, _settings(schedule=[0, 0.1, 0.1]))
    rows = await _settle(d, env, call.id)
    assert await d.run_once() == 0
    await d.stop()
    assert [(r.state, r.attempts) for r in rows] == [("dead", 3)]
    assert len(receiver.received) == 3  # the schedule has three attempts
    assert d.dead == 1
    assert call.id


async def test_redirects_are_not_followed(env: Env, receiver: WebhookReceiver) -> None:
    await env.call(receiver.url)
    receiver.status = 302
    receiver.redirect_to = f"http://127.0.0.1:{receiver.port}/elsewhere"
    d = _dispatcher(env, _settings(schedule=[0, 0.1]))
    await _drain(d, lambda: len(receiver.received) >= 2)
    await d.stop()
    assert all(r.path == "/hooks" for r in receiver.received)


async def test_target_resolving_to_loopback_is_refused_once_and_dead(
    env: Env, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Stored while private targets were allowed (the receiver is on loopback); now they are not.
    call = await env.call(f"http://localhost:{receiver.port}/hooks?token=s3cret-token")
    await env.lifecycle(call)
    refused, dead, failed = _delivery_count("refused"), _delivery_count("dead"), _delivery_count("failed")
    d = _dispatcher(env, _settings(allow_private=False, schedule=[0, 0.1, 0.1]))
    with caplog.at_level(logging.INFO, logger="gateway.webhooks"):
        rows = await _settle(d, env, call.id)
    await d.stop()
    assert receiver.received == []
    assert [(r.state, r.attempts) for r in rows] == [("dead", 1), ("dead", 0), ("dead", 0), ("dead", 0)]
    assert rows[0].last_error is not None
    assert "localhost resolves to 127.0.0.1" in rows[0].last_error
    assert "private, loopback or reserved" in rows[0].last_error
    # The later events of the call would go to the same refused URL: given up with it.
    assert all("refused" in (r.last_error or "") for r in rows[1:])
    assert _delivery_count("refused") - refused == 1
    assert (_delivery_count("dead") - dead, _delivery_count("failed") - failed) == (0, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage() == "webhook target refused"]
    assert len(warnings) == 1
    assert warnings[0].__dict__["call_id"] == call.id
    assert all("s3cret-token" not in repr(r.__dict__) for r in caplog.records)
    assert all("s3cret-token" not in (r.last_error or "") for r in rows)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0x7f.1", "017700000001", "127.1"])
async def test_numeric_ipv4_host_does_not_reach_loopback(env: Env, receiver: WebhookReceiver, host: str) -> None:
    url = f"http://{host}:{receiver.port}/hooks"
    # The URL does reach the receiver when nothing checks it ...
    open_call = await env.call(url)
    d = _dispatcher(env, _settings(allow_private=True))
    assert [r.state for r in await _settle(d, env, open_call.id)] == ["delivered"]
    await d.stop()
    assert len(receiver.received) == 1
    # ... and is refused, after one attempt, when the check is on.
    call = await env.call(url)
    d = _dispatcher(env, _settings(allow_private=False))
    rows = await _settle(d, env, call.id)
    await d.stop()
    assert len(receiver.received) == 1
    assert [(r.state, r.attempts) for r in rows] == [("dead", 1)]
    assert "resolves to 127.0.0.1" in (rows[0].last_error or "")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/calls", "must be an http or https URL"),
        ("http://user:pa55word@hooks.example.com/calls", "must not carry credentials"),
        ("http://hooks.example.com:99999/calls", "not a valid URL"),
    ],
)
async def test_malformed_target_is_dead_after_one_attempt(env: Env, url: str, why: str) -> None:
    # Such a URL can come from an account's configured webhook_url, which the API never saw.
    call = await env.call(url)
    d = _dispatcher(env, _settings(allow_private=True))
    rows = await _settle(d, env, call.id)
    await d.stop()
    assert [(r.state, r.attempts) for r in rows] == [("dead", 1)]
    assert why in (rows[0].last_error or "")
    assert "pa55word" not in (rows[0].last_error or "")


async def test_unresolvable_host_is_retried_on_the_schedule(env: Env) -> None:
    # No DNS answer is not a refusal: the name may resolve later.
    call = await env.call("http://hooks.invalid/calls")
    refused = _delivery_count("refused")
    d = _dispatcher(env, _settings(allow_private=False, schedule=[0, 0.1, 0.1]))
    rows = await _settle(d, env, call.id)
    await d.stop()
    assert [(r.state, r.attempts) for r in rows] == [("dead", 3)]
    assert (rows[0].last_error or "").startswith("cannot resolve hooks.invalid")
    assert _delivery_count("refused") == refused


def _strict_json(body: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


async def test_payload_that_is_not_strict_json_is_dead_and_the_worker_goes_on(
    env: Env, receiver: WebhookReceiver
) -> None:
    call = await env.call(receiver.url)
    # An event row holding NaN (as metadata sent as non-standard JSON can): strict JSON cannot carry it.
    await env.insert_ringing_event(call, {"id": call.id, "status": "ringing", "metadata": {"score": float("nan")}})
    await env.store.transition(call.id, CallStatus.IN_PROGRESS, datetime.now(UTC))
    d = _dispatcher(env, _settings(), poll_interval=0.05)
    d.start()  # the real worker loop: a batch that raised would be logged and the lease left to expire

    async def settled() -> list[DeliveryRow]:
        while True:
            rows = await env.deliveries(call.id)
            if all(r.state != "pending" for r in rows):
                return rows
            await asyncio.sleep(0.05)

    rows = await asyncio.wait_for(settled(), timeout=10)
    await d.stop()
    assert [(r.seq, r.state, r.attempts) for r in rows] == [(1, "delivered", 1), (2, "dead", 1), (3, "delivered", 1)]
    assert "cannot be serialized as JSON" in (rows[1].last_error or "")
    assert [_strict_json(r.body)["type"] for r in receiver.received] == ["call.initiated", "call.answered"]


async def test_pending_deliveries_survive_a_restart(env: Env, receiver: WebhookReceiver) -> None:
    call = await env.call(receiver.url)
    await env.lifecycle(call)
    # A "previous process" never got to send anything; a new dispatcher on the same database does.
    d = _dispatcher(env, _settings())
    await _drain(d, lambda: len(receiver.received) == 4)
    await d.stop()
    assert len({r.json["id"] for r in receiver.received}) == 4


async def test_each_event_is_sent_once_while_nodes_stop_mid_delivery(
    tmp_path: Path, postgres: PostgresServer, receiver: WebhookReceiver
) -> None:
    """Three senders (nodes) on one PostgreSQL database; two stop gracefully while their
    deliveries are in flight: what was under way is finished and recorded, what was claimed
    but not started is given back at once, and every event reaches the receiver once."""
    env = Env(tmp_path, await postgres.fresh_database())
    await migrate(env.engine)
    try:
        calls = [await env.call(receiver.url) for _ in range(30)]
        for call in calls:
            await env.lifecycle(call)
        receiver.delay = 0.05
        settings = _settings()
        senders = [_dispatcher(env, settings, poll_interval=0.05) for _ in range(3)]
        for sender in senders:
            sender.start()
        while len(receiver.received) < 20:
            await asyncio.sleep(0.01)
        await asyncio.gather(senders[0].stop(), senders[1].stop())

        async def all_delivered() -> None:
            while True:
                rows = [r for c in calls for r in await env.deliveries(c.id)]
                if all(r.state == "delivered" for r in rows):
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(all_delivered(), timeout=30)
        await senders[2].stop()
    finally:
        await env.writes.close()
        await env.engine.dispose()
    ids = [r.json["id"] for r in receiver.received]
    assert len(ids) == 120 and len(set(ids)) == 120  # 30 calls x 4 events, each once


