"""SIGTERM drains: readiness turns false, new calls get 503, live calls end gracefully, then exit."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.interop.conftest import KEY, gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.peers.sipp import SippUas

pytestmark = pytest.mark.interop
H = {"X-API-Key": KEY}


async def test_sigterm_drains_then_ends_live_calls(tmp_path: Path) -> None:
    with SippUas("uas_answer_wait_bye", rtp_echo=True, timeout=30) as uas:
        config = gateway_config(tmp_path, {"uri": f"sip:{uas.host}:{uas.port}"}, http={"drain_timeout_seconds": 2})
        gw = await asyncio.to_thread(GatewayProcess(config, tmp_path).start)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
            call_id = (await client.post("/v1/voice/calls", headers=H, json={"to": "+14155552671"})).json()["data"]["id"]
            deadline = time.monotonic() + 10
            while (await client.get(f"/v1/voice/calls/{call_id}", headers=H)).json()["data"]["status"] != "in_progress":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            ready = await client.get("/readyz")
            refused = await client.post("/v1/voice/calls", headers=H, json={"to": "+14155552671"})
            live = (await client.get(f"/v1/voice/calls/{call_id}", headers=H)).json()["data"]
        code = await asyncio.to_thread(gw.proc.wait, 30)
        result = await asyncio.to_thread(uas.wait, 15)
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert refused.headers["Retry-After"]
    assert live["status"] == "in_progress"  # the call was allowed to go on during the drain
    assert code == 0
    assert result.ok, result.describe()  # it got a BYE when the drain timeout ran out

    reader = await asyncio.to_thread(GatewayProcess(config, tmp_path).start)
    try:
        async with httpx.AsyncClient(base_url=reader.base_url) as client:
            final = (await client.get(f"/v1/voice/calls/{call_id}", headers=H)).json()["data"]
    finally:
        await asyncio.to_thread(reader.stop)
    assert (final["status"], final["hangup_cause"]) == ("completed", "gateway_shutdown")
