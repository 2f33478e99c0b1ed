"""The published OpenAPI document matches what the running API answers (Schemathesis against a real server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_proc import GatewayProcess

KEY = "dv_test_sk_schemathesis_0001"


@pytest.fixture
def gateway(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/gw.db"},
        "accounts": [{"id": "acct_st", "api_keys": [KEY], "numbers": ["+12025551234"], "default_from": "+12025551234"}],
        "agents": [{"id": "agt_abc123", "url": "ws://127.0.0.1:9/agent"}],
        # Nothing listens there: created calls fail honestly, which is fine for the contract.
        "trunks": [{"id": "main", "uri": "sip:127.0.0.1:9", "prefixes": ["+"]}],
        "sip": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "WARNING"},
    }
    gw = GatewayProcess(config, tmp_path).start()
    yield gw
    gw.stop()


def test_openapi_documents_every_operation(gateway: GatewayProcess) -> None:
    doc = httpx.get(gateway.base_url + "/openapi.json").json()
    ops = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert {
        ("/v1/voice/calls", "post"), ("/v1/voice/calls", "get"), ("/v1/voice/calls/{call_id}", "get"),
        ("/v1/voice/calls/{call_id}/hangup", "post"), ("/healthz", "get"), ("/readyz", "get"),
    } <= ops
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # no FastAPI default error shape
    create = doc["paths"]["/v1/voice/calls"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CallCreate")
    assert set(create["responses"]) >= {"201", "400", "401", "422", "429"}


def test_schemathesis_finds_no_server_error_or_schema_violation(gateway: GatewayProcess, tmp_path: Path) -> None:
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"), "run", gateway.base_url + "/openapi.json",
        "-H", f"X-API-Key: {KEY}",
        "--checks", "all",
        # Semantic rules (SSRF, registered numbers, routes, signed cursors) reject some schema-valid values.
        "--exclude-checks", "positive_data_acceptance",
        "--max-examples", "60",
        "--no-color",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:] + gateway.log()[-3000:]
    assert "passed" in r.stdout
