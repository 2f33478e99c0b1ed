"""Webhook receiver down, then up, during real calls: every event arrives, in order per call,
with the same event id on retries."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.interop.conftest import gateway_config, running_gateway
from tests.support.peers.sipp import SippUas
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.interop


async def test_receiver_down_then_up(tmp_path: Path) -> None:
    receiver = WebhookReceiver(status=503)
    await receiver.start()
    try:
        with SippUas("uas_busy", calls=3) as uas:
            config = gateway_config(
                tmp_path,
                {"uri": f"sip:{uas.host}:{uas.port}"},
                webhooks={"allow_private_targets": True, "retry_schedule_seconds": [0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]},
            )
            config["accounts"][0]["webhook_secret"] = "whsec_x"
            async with running_gateway(config) as gw:
                calls = [await gw.create(webhook_url=receiver.url) for _ in range(3)]
                for c in calls:
                    await gw.wait_status(c["id"], "busy")
                await asyncio.sleep(0.8)
                failed_ids = {r.json["id"] for r in receiver.received}
                assert failed_ids  # attempts were made and refused
                receiver.status = 200
                before = len(receiver.received)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    ok = [r.json for r in receiver.received[before:]]
                    if sum(1 for m in ok if m["type"] == "call.failed") == 3:
                        break
                    await asyncio.sleep(0.1)
            await asyncio.to_thread(uas.wait, 15)
    finally:
        await receiver.stop()
    delivered = [r.json for r in receiver.received[before:]]
    for c in calls:
        mine = [m for m in delivered if m["data"]["id"] == c["id"]]
        types = [m["type"] for m in mine]
        assert types in (["call.initiated", "call.failed"], ["call.initiated", "call.ringing", "call.failed"]), types
        assert mine[-1]["data"]["status"] == "busy"
        assert len({m["id"] for m in mine}) == len(mine)  # each event once after the receiver came back
    assert failed_ids <= {m["id"] for m in delivered}  # retries carried the same event ids
