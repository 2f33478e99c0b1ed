"""Property test of the API's input handling against a real gateway process and SIPp as the carrier.

Thousands of generated request bodies and headers for `POST /v1/voice/calls` (valid calls, near
misses, non-finite numbers, lone surrogates, deep nesting, raw bytes, wrong types and content
types) and query strings for `GET /v1/voice/calls`. For every answer: never a 5xx, a status the
OpenAPI document lists for the operation, and a body of the documented shape. At the end: SIPp
saw exactly one INVITE per 201, and the call log holds exactly the 201s.

The seed and the count are fixed so the run is repeatable (about 20 s). A longer run:
    ORBIT_FUZZ_EXAMPLES=20000 ORBIT_FUZZ_SEED=7 .venv/bin/pytest tests/e2e/test_api_fuzz.py
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from gateway.api.schemas import CallEnvelope, CallListEnvelope, ErrorEnvelope
from tests.interop.conftest import KEY, gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.peers import free_udp_block
from tests.support.peers.sipp import SippUas

pytestmark = pytest.mark.interop

EXAMPLES = int(os.environ.get("ORBIT_FUZZ_EXAMPLES", "2000"))
SEED = int(os.environ.get("ORBIT_FUZZ_SEED", "20261204"))

CREATE_STATUSES = {201, 400, 401, 413, 415, 422, 429, 503}
LIST_STATUSES = {200, 400, 401, 422}


class Target:
    def __init__(self, gw: GatewayProcess, uas: SippUas) -> None:
        self.gw = gw
        self.uas = uas
        self.client = httpx.Client(base_url=gw.base_url, timeout=30)
        self.created: list[str] = []


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with SippUas("uas_busy", calls=1_000_000, timeout=600) as uas:
        config = gateway_config(
            tmp, {"uri": f"sip:{uas.host}:{uas.port}", "max_concurrent": 20, "calls_per_second": 1000},
            logging={"level": "WARNING"},
        )
        rtp = free_udp_block(200, align=2)
        config["rtp"] = {"port_min": rtp, "port_max": rtp + 199}
        config["agents"] = [{"id": "agt_abc123", "url": "ws://127.0.0.1:9/agent"}]
        gw = GatewayProcess(config, tmp).start()
        target = Target(gw, uas)
        try:
            yield target
        finally:
            target.client.close()
            gw.stop()


# ----------------------------------------------------------------------------- strategies

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d"])
NUMBERS = st.sampled_from(
    ["+14155552671", "+15550123456", "+442071234567", "+1", "+44", "+999999", "14155552671", "+0123", "",
     "+1415555267a", "+14155552671\n", "+12025551234", "+33142685300"]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), SURROGATES,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(st.text(max_size=10), SURROGATES), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    value: Any = draw(SCALARS)
    for _ in range(draw(st.integers(min_value=1, max_value=1200))):
        value = {"k": value} if draw(st.booleans()) else [value]
    return value


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "to": st.one_of(NUMBERS, NUMBERS, JSON_VALUES),
    "from": st.one_of(NUMBERS, st.none(), JSON_VALUES),
    "agent_id": st.one_of(st.sampled_from(["agt_abc123", "agt_nope", ""]), st.none(), JSON_VALUES),
    "webhook_url": st.one_of(
        st.sampled_from(["https://93.184.215.14/hook", "http://127.0.0.1/x", "http://[::127.0.0.1]/", "ftp://x"]),
        st.none(), JSON_VALUES,
    ),
    "record": st.one_of(st.booleans(), JSON_VALUES),
    "max_duration": st.one_of(st.integers(min_value=-5, max_value=20000), JSON_VALUES),
    "metadata": st.one_of(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5), deep(), JSON_VALUES),
    "amd": JSON_VALUES,
}


VALID = st.fixed_dictionaries(
    {"to": st.sampled_from(["+14155552671", "+15550123456", "+442071234567"])},
    optional={
        "from": st.sampled_from(["+12025551234", None]),
        "record": st.booleans(),
        "max_duration": st.integers(min_value=1, max_value=14400),
        "metadata": st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=20), st.integers()), max_size=4),
        "webhook_url": st.none(),
    },
)


@st.composite
def call_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid call with none, one or a few fields replaced by anything at all."""
    body = draw(VALID)
    for key in draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), max_size=3)):
        body[key] = draw(FIELD_VALUES[key])
    if draw(st.integers(0, 9)) == 0:
        body.pop("to", None)
    return body


def _encode(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8 when not escaped


RAW_BODIES = st.one_of(
    st.builds(_encode, call_bodies(), st.booleans()),
    st.builds(_encode, call_bodies(), st.booleans()),
    st.builds(_encode, call_bodies(), st.booleans()),
    st.builds(_encode, call_bodies(), st.booleans()),
    st.builds(_encode, JSON_VALUES, st.booleans()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[" * 3000, b'{"to": "+14155552671", "metadata": {"a": "' + b'\\"' * 5000]),
    st.builds(lambda n: b'{"to": "+14155552671", "metadata": {"x": "' + b"y" * n + b'"}}', st.sampled_from([70_000, 20_000])),
)
KEYS = st.sampled_from([KEY, KEY, KEY, None, "", "dv_test_sk_wrong_key_00000", "x" * 300])
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json", None, "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "application/problem+json", "garbage/\u00e9"]
)


def _check_envelope(r: httpx.Response, allowed: set[int], ok_model: type) -> dict[str, Any]:
    assert r.status_code < 500, (r.status_code, r.text)
    assert r.status_code in allowed, (r.status_code, r.text)
    body = r.json()
    if r.status_code < 300:
        ok_model.model_validate(body)
    else:
        error = ErrorEnvelope.model_validate(body)
        assert error.error.status == r.status_code
        assert error.error.message
    assert body["meta"]["request_id"] == r.headers["X-Request-Id"]
    return dict(body)


def test_no_input_becomes_a_5xx_or_an_uncounted_call(target: Target) -> None:
    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(raw=RAW_BODIES, key=KEYS, content_type=CONTENT_TYPES)
    def post(raw: bytes, key: str | None, content_type: str | None) -> None:
        headers: dict[str, bytes] = {}  # bytes: values outside ASCII go out as they are
        if key is not None:
            headers["X-API-Key"] = key.encode()
        if content_type is not None:
            headers["Content-Type"] = content_type.encode()
        r = target.client.post("/v1/voice/calls", content=raw, headers=headers)
        body = _check_envelope(r, CREATE_STATUSES, CallEnvelope)
        if r.status_code == 201:
            target.created.append(body["data"]["id"])

    post()
    # The generator must also produce many calls that are placed, or the count proves little.
    assert len(target.created) > EXAMPLES // 20, len(target.created)
    _assert_one_invite_per_call(target)


QUERY_VALUES = st.one_of(
    st.text(max_size=20), SURROGATES.map(lambda s: s.encode("utf-8", "surrogatepass").decode("latin-1")),
    st.sampled_from(["+14155552671", "%2B14155552671", "+1", "0", "101", "-1", "cur_x.y", "completed", "busy"]),
)


def test_no_query_becomes_a_5xx(target: Target) -> None:
    @seed(SEED)
    @settings(max_examples=EXAMPLES // 3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(params=st.dictionaries(st.sampled_from(["limit", "cursor", "status", "from", "to", "x"]), QUERY_VALUES))
    def list_calls(params: dict[str, str]) -> None:
        r = target.client.get("/v1/voice/calls", params=params, headers={"X-API-Key": KEY})
        _check_envelope(r, LIST_STATUSES, CallListEnvelope)

    list_calls()


def _assert_one_invite_per_call(target: Target) -> None:
    created = set(target.created)
    deadline = time.monotonic() + 120
    finals: dict[str, str] = {}
    while time.monotonic() < deadline:
        cursor = None
        finals = {}
        while True:
            params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = target.client.get("/v1/voice/calls", params=params, headers={"X-API-Key": KEY}).json()
            finals.update({c["id"]: c["status"] for c in page["data"]})
            cursor = page["meta"]["pagination"]["cursor"]
            if cursor is None:
                break
        if all(status not in ("initiating", "ringing") for status in finals.values()):
            break
        time.sleep(0.5)
    assert set(finals) == created  # the call log holds exactly the 201s
    assert set(finals.values()) == {"busy"}, {s for s in finals.values()}
    result = target.uas.stop()
    assert result is not None
    invites = {m.call_id for m in result.received("INVITE")}
    assert len(invites) == len(created), (len(invites), len(created))


def test_log_has_no_unhandled_errors(target: Target) -> None:
    log = Path(target.gw.log_path).read_text(errors="replace")
    assert "unhandled error" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_200_mb_body_is_never_read_whole(target: Target) -> None:
    assert target.gw.proc is not None
    before = _rss_kb(target.gw.proc.pid)

    def chunks() -> Iterator[bytes]:
        yield b'{"to": "+14155552671", "metadata": {"x": "'
        for _ in range(200):
            yield b"y" * 1_000_000

    # Streamed without Content-Length: the gateway must stop reading at its limit.
    try:
        r = target.client.post("/v1/voice/calls", content=chunks(), headers={"X-API-Key": KEY})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    except httpx.WriteError:
        pass  # the server answered and closed while the client was still sending: also a refusal
    grown_mb = (_rss_kb(target.gw.proc.pid) - before) / 1024
    assert grown_mb < 30, grown_mb
    assert target.client.get("/readyz").status_code == 200
