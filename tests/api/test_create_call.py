"""POST /v1/voice/calls: the seed's request and response, defaults, and every validation error."""

from __future__ import annotations

import re

import pytest

from tests.conftest import KEY_A, KEY_B, ApiClient

SEED_REQUEST = {
    "to": "+14155552671",
    "from": "+12025551234",
    "agent_id": "agt_abc123",
    "record": True,
    "webhook_url": "https://example.com/webhooks/calls",
    "metadata": {"campaign": "retention"},
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_seed_request_creates_call(api: ApiClient) -> None:
    r = await api.http.post("/v1/voice/calls", json=SEED_REQUEST, headers={"X-API-Key": KEY_A})
    assert r.status_code == 201, r.text
    body = r.json()
    data, meta = body["data"], body["meta"]
    assert set(body) == {"data", "meta"}
    assert re.fullmatch(r"call_[0-9a-f]{24}", data["id"])
    assert data["to"] == "+14155552671"
    assert data["from"] == "+12025551234"
    assert data["agent_id"] == "agt_abc123"
    assert data["status"] == "initiating"
    assert data["record"] is True
    assert data["metadata"] == {"campaign": "retention"}
    assert TS.fullmatch(data["created_at"])
    assert data["answered_at"] is None and data["ended_at"] is None and data["duration_seconds"] is None
    assert re.fullmatch(r"req_[0-9a-f]{24}", meta["request_id"])
    assert TS.fullmatch(meta["timestamp"])
    assert r.headers["X-Request-Id"] == meta["request_id"]
    # The call was handed to the backend, and it is stored.
    assert [c.id for c in api.backend.dialed] == [data["id"]]
    got = await api.get(f"/v1/voice/calls/{data['id']}")
    assert got.json()["data"]["status"] == "initiating"


async def test_defaults(api: ApiClient) -> None:
    r = await api.create(to="+14155552671")
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["from"] == "+12025551234"  # the account's default_from
    assert data["record"] is False
    assert data["max_duration"] == 3600
    assert data["metadata"] == {}
    assert data["agent_id"] is None
    assert data["recording_url"] is None


async def test_unknown_fields_are_ignored(api: ApiClient) -> None:
    r = await api.create(to="+14155552671", amd=True, color="blue")
    assert r.status_code == 201, r.text


async def test_other_registered_number_as_from(api: ApiClient) -> None:
    r = await api.create(to="+14155552671", **{"from": "+12025550000"})
    assert r.status_code == 201
    assert r.json()["data"]["from"] == "+12025550000"


def _err(r, status: int, code: str, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "meta"}
    err = body["error"]
    assert err["code"] == code, err
    assert err["status"] == status
    assert err["message"]
    assert body["meta"]["request_id"] == r.headers["X-Request-Id"]
    if field is not None:
        assert err["details"]["field"] == field
    return err


@pytest.mark.parametrize(
    "to",
    ["14155552671", "+0123456", "+", "+1415555267a", "+1 4155552671", "+1234567890123456", "+٤١٥٥٥٥", "+１４１５", "",
     "+14155552671\n"],
)
async def test_invalid_to(api: ApiClient, to: str) -> None:
    err = _err(await api.create(to=to), 422, "INVALID_PHONE_NUMBER", "to")
    assert err["details"]["expected"].startswith("E.164")


async def test_to_of_wrong_type(api: ApiClient) -> None:
    _err(await api.create(to=14155552671), 422, "INVALID_PHONE_NUMBER", "to")


async def test_missing_to(api: ApiClient) -> None:
    r = await api.post("/v1/voice/calls", json={"from": "+12025551234"})
    _err(r, 422, "MISSING_REQUIRED_FIELD", "to")


async def test_from_not_registered(api: ApiClient) -> None:
    err = _err(await api.create(**{"from": "+12025559999"}), 422, "INVALID_FROM_NUMBER", "from")
    assert err["details"]["value"] == "+12025559999"


async def test_from_of_another_account(api: ApiClient) -> None:
    _err(await api.create(**{"from": "+442071234567"}), 422, "INVALID_FROM_NUMBER", "from")


async def test_from_invalid_format(api: ApiClient) -> None:
    _err(await api.create(**{"from": "2025551234"}), 422, "INVALID_PHONE_NUMBER", "from")


async def test_from_required_without_default(api: ApiClient) -> None:
    _err(await api.create(key=KEY_B, to="+442079460000"), 422, "MISSING_REQUIRED_FIELD", "from")


async def test_unknown_agent(api: ApiClient) -> None:
    _err(await api.create(agent_id="agt_nope"), 422, "AGENT_NOT_FOUND", "agent_id")


async def test_no_route(api: ApiClient) -> None:
    _err(await api.create(to="+33142685300"), 422, "NO_ROUTE", "to")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "not a url",
        "https://",
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
        "https://user:pass@example.com/hook",
    ],
)
async def test_invalid_webhook_url(api: ApiClient, url: str) -> None:
    _err(await api.create(webhook_url=url), 422, "INVALID_WEBHOOK_URL", "webhook_url")


async def test_public_literal_webhook_accepted(api: ApiClient) -> None:
    r = await api.create(webhook_url="https://93.184.215.14/hooks")
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("value", [0, -5, 14401, "60", 60.5, True, None])
async def test_invalid_max_duration(api: ApiClient, value: object) -> None:
    _err(await api.create(max_duration=value), 422, "VALIDATION_ERROR", "max_duration")


async def test_max_duration_bounds_accepted(api: ApiClient) -> None:
    for value in (1, 14400):
        r = await api.create(max_duration=value)
        assert r.status_code == 201
        assert r.json()["data"]["max_duration"] == value


@pytest.mark.parametrize("value", [[1, 2], "x", 5])
async def test_metadata_must_be_object(api: ApiClient, value: object) -> None:
    _err(await api.create(metadata=value), 422, "VALIDATION_ERROR", "metadata")


async def test_metadata_too_large(api: ApiClient) -> None:
    _err(await api.create(metadata={"blob": "x" * 17000}), 422, "METADATA_TOO_LARGE", "metadata")


@pytest.mark.parametrize("value", ["true", 1, None])
async def test_record_must_be_boolean(api: ApiClient, value: object) -> None:
    _err(await api.create(record=value), 422, "VALIDATION_ERROR", "record")


async def test_malformed_json(api: ApiClient) -> None:
    r = await api.post("/v1/voice/calls", content=b'{"to": "+1415', headers={"Content-Type": "application/json"})
    _err(r, 400, "INVALID_JSON")


async def test_body_not_an_object(api: ApiClient) -> None:
    r = await api.post("/v1/voice/calls", json=["+14155552671"])
    _err(r, 422, "VALIDATION_ERROR", "body")


async def test_invalid_utf8_body(api: ApiClient) -> None:
    r = await api.post("/v1/voice/calls", content=b"\xff\xfe{}", headers={"Content-Type": "application/json"})
    _err(r, 400, "INVALID_JSON")


async def test_trunk_queue_full_is_429(settings) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import open_client

    small = [t.model_copy(update={"max_concurrent": 1, "queue_size": 1}) for t in settings.trunks]
    async for api in open_client(settings.model_copy(update={"trunks": small})):
        for _ in range(2):  # one carried, one queued: live calls of the trunk
            assert (await api.create()).status_code == 201
        r = await api.create()
        err = _err(r, 429, "RATE_LIMIT_EXCEEDED")
        assert r.headers["Retry-After"] == "1"
        assert set(err["details"]) == {"retry_after", "limit", "window"}
        assert len(api.backend.dialed) == 2  # the refused call was neither stored nor dialled
        listing = await api.get("/v1/voice/calls")
        assert listing.json()["meta"]["pagination"]["total"] == 2
        # Another trunk is not affected.
        assert (await api.create(key=KEY_B, to="+442079460000", **{"from": "+442071234567"})).status_code == 201


async def test_internal_error_hides_internals(api: ApiClient) -> None:
    async def boom(call: object) -> None:
        raise RuntimeError("secret internal detail")

    api.backend.dial = boom  # type: ignore[method-assign]
    r = await api.create()
    err = _err(r, 500, "INTERNAL_ERROR")
    assert "secret" not in r.text
    assert err["message"] == "An internal error occurred"


async def test_draining_refuses_new_calls(api: ApiClient) -> None:
    api.gateway.draining = True
    r = await api.create()
    _err(r, 503, "SERVICE_UNAVAILABLE")
    assert r.headers["Retry-After"]
    assert (await api.http.get("/readyz")).status_code == 503
