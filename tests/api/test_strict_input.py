"""Bad input never becomes a 500 or a placed call: non-finite numbers, lone surrogates, deep nesting,
oversized and non-JSON bodies, impossible phone numbers. Each is refused before anything is stored
or dialled, in the Orbit envelope, naming the field."""

from __future__ import annotations

import json

import pytest

from tests.api.test_create_call import _err
from tests.conftest import KEY_A, ApiClient

H = {"X-API-Key": KEY_A, "Content-Type": "application/json"}


async def _post_raw(api: ApiClient, raw: bytes, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return await api.http.post("/v1/voice/calls", content=raw, headers=headers or H)


async def _nothing_placed(api: ApiClient) -> None:
    assert api.backend.dialed == []
    listing = await api.get("/v1/voice/calls")
    assert listing.status_code == 200, listing.text
    assert listing.json()["meta"]["pagination"]["total"] == 0


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ('"metadata": {"score": NaN}', "metadata.score"),
        ('"metadata": {"a": [1, Infinity]}', "metadata.a[1]"),
        ('"metadata": {"b": -Infinity}', "metadata.b"),
        ('"metadata": {"big": 1e999}', "metadata.big"),
        ('"max_duration": NaN', "max_duration"),
    ],
)
async def test_non_finite_numbers_are_refused(api: ApiClient, fragment: str, field: str) -> None:
    r = await _post_raw(api, ('{"to": "+14155552671", ' + fragment + "}").encode())
    err = _err(r, 422, "NON_FINITE_NUMBER", field)
    assert "finite" in err["message"]
    await _nothing_placed(api)


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        ('"metadata": {"k": "\\ud800"}', "metadata.k"),
        ('"metadata": {"\\udfff": 1}', "metadata"),
        ('"metadata": {"k": ["ok", "\\udc00x"]}', "metadata.k[1]"),
        ('"agent_id": "\\ud83d"', "agent_id"),
    ],
)
async def test_lone_surrogates_are_refused(api: ApiClient, fragment: str, field: str) -> None:
    r = await _post_raw(api, ('{"to": "+14155552671", ' + fragment + "}").encode())
    _err(r, 422, "INVALID_UNICODE", field)
    await _nothing_placed(api)


async def test_a_surrogate_pair_is_fine(api: ApiClient) -> None:
    r = await _post_raw(api, b'{"to": "+14155552671", "metadata": {"emoji": "\\ud83d\\ude00"}}')
    assert r.status_code == 201, r.text
    assert r.json()["data"]["metadata"] == {"emoji": "\N{GRINNING FACE}"}


def _nested(levels: int) -> str:
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


@pytest.mark.parametrize("levels", [17, 100, 950, 1000, 100_000])
async def test_deep_metadata_is_refused(api: ApiClient, levels: int) -> None:
    raw = '{"to": "+14155552671", "metadata": ' + _nested(levels) + "}"
    r = await _post_raw(api, raw.encode())
    if len(raw) > 65536:
        _err(r, 413, "PAYLOAD_TOO_LARGE")
    else:
        err = _err(r, 422, "NESTING_TOO_DEEP", "metadata")
        assert "16 levels" in err["message"]
    await _nothing_placed(api)


async def test_metadata_at_the_depth_limit_is_kept(api: ApiClient) -> None:
    r = await _post_raw(api, ('{"to": "+14155552671", "metadata": ' + _nested(16) + "}").encode())
    assert r.status_code == 201, r.text
    call_id = r.json()["data"]["id"]
    got = await api.get(f"/v1/voice/calls/{call_id}")
    assert got.status_code == 200
    hung = await api.post(f"/v1/voice/calls/{call_id}/hangup")
    assert hung.status_code == 200, hung.text


async def test_deep_array_body_is_refused_as_body(api: ApiClient) -> None:
    r = await _post_raw(api, b"[" * 5000 + b"]" * 5000)
    _err(r, 422, "NESTING_TOO_DEEP", "body")


async def test_unterminated_strings_do_not_stall_the_scan(api: ApiClient) -> None:
    # Each quote starts a string that never ends: the scan must stay linear.
    r = await _post_raw(api, b'{"to": "+14155552671", "metadata": {"a": "' + b'\\"' * 30000)
    _err(r, 400, "INVALID_JSON")


async def test_body_over_the_limit_is_413_and_not_read(api: ApiClient) -> None:
    big = json.dumps({"to": "+14155552671", "metadata": {"x": "y" * 70000}}).encode()
    r = await _post_raw(api, big)
    err = _err(r, 413, "PAYLOAD_TOO_LARGE")
    assert err["details"]["limit"] == 65536
    assert r.headers["Connection"] == "close"
    await _nothing_placed(api)


async def test_streamed_body_over_the_limit_is_413(api: ApiClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b" " * 10_000  # no Content-Length: counted as it arrives

    r = await api.http.post("/v1/voice/calls", content=chunks(), headers=H)
    _err(r, 413, "PAYLOAD_TOO_LARGE")


async def test_non_json_content_type_is_415(api: ApiClient) -> None:
    r = await _post_raw(
        api, b'{"to": "+14155552671"}', {"X-API-Key": KEY_A, "Content-Type": "application/x-www-form-urlencoded"}
    )
    _err(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    await _nothing_placed(api)


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/merge-patch+json"])
async def test_json_content_types_and_none_are_accepted(api: ApiClient, content_type: str | None) -> None:
    headers = {"X-API-Key": KEY_A} | ({"Content-Type": content_type} if content_type else {})
    r = await _post_raw(api, b'{"to": "+14155552671"}', headers)
    assert r.status_code == 201, r.text


async def test_empty_body_is_invalid_json(api: ApiClient) -> None:
    _err(await _post_raw(api, b""), 400, "INVALID_JSON")


async def test_unauthenticated_bodies_are_not_looked_at(api: ApiClient) -> None:
    r = await _post_raw(api, b'{"metadata": NaN', {"X-API-Key": "dv_test_sk_not_a_key_at_all"})
    _err(r, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+1", "2 to 15 digits"),
        ("+44", "too short"),
        ("+999999", "unknown country code"),
        ("+1415555", "too short"),
        ("+123456789012345", "too long"),
    ],
)
async def test_impossible_numbers_are_refused(api: ApiClient, number: str, why: str) -> None:
    err = _err(await api.create(to=number), 422, "INVALID_PHONE_NUMBER", "to")
    assert why in err["message"]
    assert err["details"]["value"] == number
    await _nothing_placed(api)


async def test_impossible_from_is_refused(api: ApiClient) -> None:
    _err(await api.create(**{"from": "+1202"}), 422, "INVALID_PHONE_NUMBER", "from")


async def test_fictional_but_possible_numbers_still_work(api: ApiClient) -> None:
    # +1 555 01xx is fictional (not "valid"), but possible: carriers' test numbers look like it.
    r = await api.create(to="+15550123456")
    assert r.status_code == 201, r.text


async def test_list_filter_with_impossible_number(api: ApiClient) -> None:
    _err(await api.get("/v1/voice/calls", to="+1"), 422, "INVALID_PHONE_NUMBER", "to")


async def test_an_account_may_demand_valid_numbers(settings) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import open_client

    strict = settings.model_copy(
        update={"accounts": [settings.accounts[0].model_copy(update={"number_validation": "valid"}), settings.accounts[1]]}
    )
    async for api in open_client(strict):
        err = _err(await api.create(to="+15550123456"), 422, "INVALID_PHONE_NUMBER", "to")
        assert "assigned" in err["message"]
        assert (await api.create(to="+14155552671")).status_code == 201
