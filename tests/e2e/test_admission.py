"""Trunk admission under concurrency, against a gateway process and SIPp as the carrier: 500 POSTs
at once to a trunk with max_concurrent 20 and queue_size 100 place exactly 120 calls; the 100 that
wait longer than queue_timeout_seconds end failed/queue_timeout, with their webhooks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.interop.conftest import KEY, gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.peers import free_udp_block
from tests.support.peers.sipp import SippUas
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.interop
H = {"X-API-Key": KEY}


async def test_concurrent_posts_never_overfill_the_queue(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        # The far end rings until cancelled: the 20 dialled calls hold their slots.
        with SippUas("uas_ring_until_cancel", calls=1000, timeout=120) as uas:
            config = gateway_config(
                tmp_path,
                {"uri": f"sip:{uas.host}:{uas.port}", "max_concurrent": 20, "queue_size": 100,
                 "calls_per_second": 200, "queue_timeout_seconds": 3},
                webhooks={"allow_private_targets": True},
                logging={"level": "WARNING"},
            )
            rtp = free_udp_block(100, align=2)
            config["rtp"] = {"port_min": rtp, "port_max": rtp + 99}
            gw = await asyncio.to_thread(GatewayProcess(config, tmp_path).start)
            try:
                limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
                async with httpx.AsyncClient(base_url=gw.base_url, timeout=60, limits=limits) as client:
                    body = {"to": "+14155552671", "webhook_url": receiver.url}
                    answers = await asyncio.gather(
                        *(client.post("/v1/voice/calls", json=body, headers=H) for _ in range(500))
                    )
                    statuses = [r.status_code for r in answers]
                    created = [r.json()["data"]["id"] for r in answers if r.status_code == 201]
                    refused = [r for r in answers if r.status_code == 429]
                    assert (len(created), len(refused)) == (120, 380), sorted(set(statuses))
                    assert all(r.headers["Retry-After"].isdigit() for r in refused)
                    assert {r.json()["error"]["code"] for r in refused} == {"RATE_LIMIT_EXCEEDED"}

                    calls = await _wait_settled(client, created, expect_live=20)
                    timed_out = [c for c in calls if c["status"] == "failed"]
                    assert len(timed_out) == 100
                    assert {c["hangup_cause"] for c in timed_out} == {"queue_timeout"}
                    assert {c["status"] for c in calls} == {"failed", "ringing"}

                    # Each queue timeout is announced once.
                    deadline = time.monotonic() + 15
                    failed_ids: list[str] = []
                    while time.monotonic() < deadline:
                        failed_ids = [
                            x.json["data"]["id"] for x in receiver.received if x.json["type"] == "call.failed"
                        ]
                        if len(failed_ids) >= 100:
                            break
                        await asyncio.sleep(0.1)
                    assert sorted(failed_ids) == sorted(c["id"] for c in timed_out)

                    for c in calls:
                        if c["status"] == "ringing":
                            assert (await client.post(f"/v1/voice/calls/{c['id']}/hangup", headers=H)).status_code == 200
            finally:
                await asyncio.to_thread(gw.stop)
            result = uas.stop()
    finally:
        await receiver.stop()
    assert result is not None
    assert len({m.call_id for m in result.received("INVITE")}) == 20  # never more than max_concurrent


async def _wait_settled(client: httpx.AsyncClient, ids: list[str], *, expect_live: int) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 30
    calls: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        calls = [(await client.get(f"/v1/voice/calls/{i}", headers=H)).json()["data"] for i in ids]
        live = [c for c in calls if c["status"] in ("initiating", "ringing")]
        if len(live) == expect_live and all(c["status"] == "ringing" for c in live):
            return calls
        await asyncio.sleep(0.2)
    raise AssertionError({c["status"] for c in calls})
