"""GET /v1/voice/calls: keyset pagination, filters, cursor integrity."""

from __future__ import annotations

import base64

import pytest

from gateway.outcome import CallOutcome, CallStatus, HangupCause
from tests.conftest import KEY_A, KEY_B, ApiClient


async def _page_all(api: ApiClient, key: str = KEY_A, **params: object) -> tuple[list[dict], list[dict]]:
    items: list[dict] = []
    metas: list[dict] = []
    cursor = None
    for _ in range(1000):
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        r = await api.get("/v1/voice/calls", key=key, **q)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["data"])
        metas.append(body["meta"])
        cursor = body["meta"]["pagination"]["cursor"]
        assert body["meta"]["pagination"]["has_more"] == (cursor is not None)
        if cursor is None:
            return items, metas
    raise AssertionError("pagination did not end")


async def _make_calls(api: ApiClient, n: int) -> dict[str, dict]:
    made: dict[str, dict] = {}
    for i in range(n):
        body: dict = {"to": f"+1415555{i % 3:04d}"}
        if i % 4 == 0:
            body["from"] = "+12025550000"
        r = await api.create(**body)
        call = r.json()["data"]
        made[call["id"]] = call
        if i % 5 == 0:
            await api.backend.end(call["id"], CallOutcome(CallStatus.BUSY, HangupCause.BUSY))
            made[call["id"]]["status"] = "busy"
    return made


async def test_seed_list_shape(api: ApiClient) -> None:
    await _make_calls(api, 3)
    r = await api.get("/v1/voice/calls", limit=10)
    body = r.json()
    assert body["meta"]["pagination"] == {"cursor": None, "has_more": False, "total": 3}
    first = body["data"][0]
    for field in ("id", "to", "from", "status", "duration_seconds", "recording_url", "created_at", "ended_at"):
        assert field in first


async def test_pagination_over_hundreds_of_calls(api: ApiClient) -> None:
    made = await _make_calls(api, 230)
    items, metas = await _page_all(api, limit=17)
    ids = [c["id"] for c in items]
    assert len(ids) == len(set(ids)) == 230
    assert set(ids) == set(made)
    assert all(m["pagination"]["total"] == 230 for m in metas)
    assert all(len(page) for page in [items])
    # Newest first.
    created = [c["created_at"] for c in items]
    assert created == sorted(created, reverse=True)

    filters = [
        ({"status": "busy"}, lambda c: c["status"] == "busy"),
        ({"status": "initiating"}, lambda c: c["status"] == "initiating"),
        ({"from": "+12025550000"}, lambda c: c["from"] == "+12025550000"),
        ({"to": "+14155550001"}, lambda c: c["to"] == "+14155550001"),
        ({"to": "+14155550002", "status": "busy"}, lambda c: c["to"] == "+14155550002" and c["status"] == "busy"),
    ]
    for params, pred in filters:
        got, metas = await _page_all(api, limit=9, **params)
        expected = {cid for cid, c in made.items() if pred(c)}
        got_ids = [c["id"] for c in got]
        assert len(got_ids) == len(set(got_ids)), params
        assert set(got_ids) == expected, params
        assert metas[0]["pagination"]["total"] == len(expected)
        assert expected  # each filter selects something


async def test_paging_while_calls_are_created(api: ApiClient) -> None:
    made = await _make_calls(api, 40)
    seen: list[str] = []
    cursor = None
    while True:
        q: dict = {"limit": 7}
        if cursor:
            q["cursor"] = cursor
        body = (await api.get("/v1/voice/calls", **q)).json()
        seen.extend(c["id"] for c in body["data"])
        await api.create()  # a new call arrives between pages
        cursor = body["meta"]["pagination"]["cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 40
    assert set(seen) == set(made)


async def test_unencoded_plus_in_filter(api: ApiClient) -> None:
    await _make_calls(api, 3)
    r = await api.http.get("/v1/voice/calls?to=+14155550001", headers={"X-API-Key": KEY_A})
    assert r.status_code == 200
    assert [c["to"] for c in r.json()["data"]] == ["+14155550001"]


def _tamper(cursor: str) -> list[str]:
    body, mac = cursor[4:].split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[5] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return [
        f"cur_{forged}.{mac}",
        cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"),
        "cur_abc",
        "garbage",
        cursor + ".x",
        "cur_%%%.@@@",
    ]


async def test_tampered_cursor_is_400(api: ApiClient) -> None:
    await _make_calls(api, 5)
    cursor = (await api.get("/v1/voice/calls", limit=2)).json()["meta"]["pagination"]["cursor"]
    assert cursor
    for bad in _tamper(cursor):
        r = await api.get("/v1/voice/calls", cursor=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "INVALID_CURSOR"


async def test_cursor_is_bound_to_account_and_filters(api: ApiClient) -> None:
    await _make_calls(api, 5)
    cursor = (await api.get("/v1/voice/calls", limit=2)).json()["meta"]["pagination"]["cursor"]
    r = await api.get("/v1/voice/calls", key=KEY_B, cursor=cursor)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"
    r = await api.get("/v1/voice/calls", cursor=cursor, status="busy")
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"),
     ({"status": "ringingg"}, "status"), ({"to": "12345"}, "to"), ({"from": "+0"}, "from")],
)
async def test_bad_query_parameters(api: ApiClient, params: dict, field: str) -> None:
    r = await api.get("/v1/voice/calls", **params)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["details"]["field"] == field
    assert err["code"] in ("VALIDATION_ERROR", "INVALID_PHONE_NUMBER")


async def test_default_limit_is_20(api: ApiClient) -> None:
    await _make_calls(api, 25)
    body = (await api.get("/v1/voice/calls")).json()
    assert len(body["data"]) == 20
    assert body["meta"]["pagination"]["has_more"] is True
