from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Settings, load_settings
from gateway.runtime import Gateway, create_app
from tests.support.backends import ScriptedBackend
from tests.support.postgres import PostgresServer

KEY_A = "dv_test_sk_account_a_0123456789"
KEY_B = "dv_test_sk_account_b_9876543210"


def base_config(db_url: str, tmp: Path) -> dict[str, Any]:
    import hashlib

    return {
        "database": {"url": db_url},
        "storage": {"local_dir": str(tmp / "recordings")},
        "http": {"signing_secret": "test-signing-secret"},
        "accounts": [
            {
                "id": "acct_a",
                "api_keys": [KEY_A],
                "numbers": ["+12025551234", "+12025550000"],
                "default_from": "+12025551234",
                "webhook_secret": "whsec_a",
            },
            {
                # Stored hashed, as operators should.
                "id": "acct_b",
                "api_keys": ["sha256:" + hashlib.sha256(KEY_B.encode()).hexdigest()],
                "numbers": ["+442071234567"],
            },
        ],
        "agents": [{"id": "agt_abc123", "url": "ws://127.0.0.1:9/agent"}],
        "trunks": [
            {"id": "us", "uri": "sip:127.0.0.1:5999", "prefixes": ["+1"]},
            {"id": "uk", "uri": "sip:127.0.0.1:5998", "prefixes": ["+44"]},
        ],
        "webhooks": {"allow_private_targets": False},
    }


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/gateway.db"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(**base_config(sqlite_url, tmp_path))


class ApiClient:
    def __init__(self, client: httpx.AsyncClient, gateway: Gateway, backend: ScriptedBackend) -> None:
        self.http = client
        self.gateway = gateway
        self.backend = backend

    async def create(self, key: str = KEY_A, **body: Any) -> httpx.Response:
        body.setdefault("to", "+14155552671")
        return await self.http.post("/v1/voice/calls", json=body, headers={"X-API-Key": key})

    async def get(self, path: str, key: str | None = KEY_A, **params: Any) -> httpx.Response:
        headers = {"X-API-Key": key} if key else {}
        return await self.http.get(path, params=params, headers=headers)

    async def post(self, path: str, key: str | None = KEY_A, **kw: Any) -> httpx.Response:
        headers = {"X-API-Key": key} if key else {}
        headers.update(kw.pop("headers", {}))
        return await self.http.post(path, headers=headers, **kw)


async def open_client(settings: Settings) -> AsyncIterator[ApiClient]:
    app = create_app(settings, lambda parts: ScriptedBackend(parts.progress))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            gateway = app.state.gateway
            yield ApiClient(client, gateway, gateway.backend)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[ApiClient]:
    async for client in open_client(settings):
        yield client


@pytest.fixture
def example_config() -> Settings:
    root = Path(__file__).resolve().parent.parent
    return load_settings(root / "config" / "gateway.example.yaml", environ={})


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TZ", "UTC")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    # The gateway runs on uvloop in production; so do the tests, so loop differences show here.
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
