"""A busy call store (no free connection in time, SQLite locked): the API says 503 and loses
nothing, and what the SIP side reports is written once the store answers again."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from tests.conftest import ApiClient

POOL_TIMEOUT = sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out")


async def test_create_answers_503_with_retry_after_when_the_store_is_busy(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def busy(*_: Any, **__: Any) -> None:
        raise POOL_TIMEOUT

    monkeypatch.setattr(api.gateway.store, "insert", busy)
    r = await api.create(to="+14155552671")
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "SERVICE_UNAVAILABLE" and "try again" in err["message"]
    assert r.headers["Retry-After"] == "1"
    assert api.backend.dialed == []  # nothing was placed for a call that was not stored
    monkeypatch.undo()
    listing = (await api.get("/v1/voice/calls")).json()
    assert listing["meta"]["pagination"]["total"] == 0


async def test_progress_waits_for_a_busy_store_instead_of_dropping_the_status(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = (await api.create(to="+14155552671")).json()["data"]
    store = api.gateway.store
    real = store.transition
    failures = {"left": 3}

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise sa_exc.OperationalError("UPDATE calls", {}, Exception("database is locked"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "transition", flaky)
    await api.backend.ring(created["id"])
    await api.backend.answer(created["id"])
    await api.backend.end(
        created["id"], CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE)
    )
    assert failures["left"] == 0
    call = (await api.get(f"/v1/voice/calls/{created['id']}")).json()["data"]
    assert call["status"] == "completed" and call["answered_at"] is not None
    events = [e.type for e in await store.events(created["id"])]
    assert events.count("call.completed") == 1


async def test_progress_gives_up_after_the_retry_budget(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    created = (await api.create(to="+14155552671")).json()["data"]

    async def down(*_: Any, **__: Any) -> None:
        raise POOL_TIMEOUT

    monkeypatch.setattr(api.gateway.store, "transition", down)
    api.gateway.calls.store_retry_seconds = 0.3
    with pytest.raises(sa_exc.TimeoutError):
        await api.backend.ring(created["id"])
