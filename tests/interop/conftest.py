from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Settings
from gateway.runtime import create_app
from tests.support.peers import free_udp_block

KEY = "dv_test_sk_interop_0123456789"


class Gw:
    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.http = client
        self.app = app
        self.gateway = app.state.gateway

    @property
    def dialer(self) -> Any:
        return self.gateway.backend

    async def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("to", "+14155552671")
        r = await self.http.post("/v1/voice/calls", json=body, headers={"X-API-Key": KEY})
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])

    async def get(self, call_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/voice/calls/{call_id}", headers={"X-API-Key": KEY})
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    async def hangup(self, call_id: str) -> httpx.Response:
        return await self.http.post(f"/v1/voice/calls/{call_id}/hangup", headers={"X-API-Key": KEY})

    async def playout(self) -> dict[str, float]:
        """``orbit_playout_frames_total`` from GET /metrics, by outcome."""
        r = await self.http.get("/metrics")
        assert r.status_code == 200, r.text
        return {
            s.labels["outcome"]: s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
            if s.name == "orbit_playout_frames_total"
        }

    async def wait_status(self, call_id: str, *statuses: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            call = await self.get(call_id)
            if not seen or seen[-1] != call["status"]:
                seen.append(call["status"])
            if call["status"] in statuses:
                return call
            await asyncio.sleep(0.05)
        raise AssertionError(f"call {call_id} never reached {statuses}; went through {seen}")


def gateway_config(tmp: Path, trunk: dict[str, Any], **sections: Any) -> dict[str, Any]:
    rtp = free_udp_block(40, align=2)
    config: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/gw.db"},
        "sip": {"host": "127.0.0.1", "port": 0, "t1": 0.1},
        "rtp": {"port_min": rtp, "port_max": rtp + 39},
        "storage": {"local_dir": str(tmp / "recordings")},
        "accounts": [{"id": "acct_i", "api_keys": [KEY], "numbers": ["+12025551234"], "default_from": "+12025551234"}],
        "trunks": [{"id": "carrier", "prefixes": ["+"], **trunk}],
        "logging": {"level": "DEBUG"},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


@asynccontextmanager
async def running_gateway(config: dict[str, Any]) -> AsyncIterator[Gw]:
    app = create_app(Settings(**config))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test", timeout=60) as client:
            yield Gw(client, app)
