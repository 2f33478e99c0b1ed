"""kill -9 during a live recorded call, then restart: the carrier leg is ended on the wire (BYE
after answer, CANCEL while ringing), the call is settled once with the time the node was last
known to carry it, its final webhook is sent once, and its partial recording is repaired,
stored and served."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import soundfile

from tests.interop.conftest import KEY, gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.peers import free_port
from tests.support.peers.sipp import SippUas
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.interop
H = {"X-API-Key": KEY}


async def _wait(client: httpx.AsyncClient, url: str, pred, timeout: float = 20) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = (await client.get(url, headers=H)).json()["data"]
        if pred(body):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met: {body}")


async def test_kill_9_during_a_live_call(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        with SippUas("uas_answer_wait_bye", rtp_echo=True, timeout=60) as uas:
            config = gateway_config(
                tmp_path,
                {"uri": f"sip:{uas.host}:{uas.port}"},
                webhooks={"allow_private_targets": True, "retry_schedule_seconds": [0, 0.5, 0.5, 0.5]},
                logging={"level": "INFO"},
            )
            config["database"]["url"] = f"sqlite+aiosqlite:///{tmp_path}/gw.db"
            config["sip"]["port"] = free_port(udp=True, tcp=True)  # the same after the restart, as in production
            config["cluster"] = {"lease_seconds": 2, "renew_seconds": 0.5}
            # Started from a thread: this test's event loop must keep serving the webhook receiver.
            first = await asyncio.to_thread(GatewayProcess(config, tmp_path).start)
            async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
                r = await client.post(
                    "/v1/voice/calls", headers=H, json={"to": "+14155552671", "record": True, "webhook_url": receiver.url}
                )
                assert r.status_code == 201, r.text
                call_id = r.json()["data"]["id"]
                await _wait(client, f"/v1/voice/calls/{call_id}", lambda c: c["status"] == "in_progress")
                await asyncio.sleep(2.0)
            await asyncio.to_thread(first.stop, signal.SIGKILL)
            killed_at = time.time()
            await asyncio.sleep(3.0)  # down for a while: ended_at must not count this

            second = GatewayProcess(config, tmp_path)  # same database and recordings, fresh ports
            await asyncio.to_thread(second.start)
            try:
                async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as client:
                    call = await _wait(
                        client,
                        f"/v1/voice/calls/{call_id}",
                        lambda c: c["status"] == "failed" and c["recording_status"] in ("available", "failed"),
                    )
                    wav = (await client.get(call["recording_url"])).content
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not any(
                    x.json["type"] == "call.recording_ready" for x in receiver.received
                ):
                    await asyncio.sleep(0.1)
            finally:
                await asyncio.to_thread(second.stop)
            result = await asyncio.to_thread(uas.wait, 10)
    finally:
        await receiver.stop()

    # The carrier's dialog was ended with a BYE by the restarted node: SIPp's scenario
    # (answer, then wait for BYE and answer it 200) passed.
    assert result.ok, result.describe()
    bye = result.received("BYE")[0]
    assert bye.call_id == result.received("INVITE")[0].call_id
    assert (call["status"], call["hangup_cause"]) == ("failed", "gateway_restart")
    ended = datetime.fromisoformat(call["ended_at"].replace("Z", "+00:00")).timestamp()
    assert killed_at - 2.0 <= ended <= killed_at + 1.0, (ended, killed_at)
    assert call["recording_status"] == "available"
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert audio.shape[1] == 2 and rate == 8000
    assert 1.0 <= len(audio) / rate <= 4.0  # what was recorded before the kill, repaired
    mine = [x.json for x in receiver.received if x.json["data"]["id"] == call_id]
    finals = [m for m in mine if m["type"] == "call.failed"]
    assert len({m["id"] for m in finals}) == 1 and len(finals) == 1
    assert finals[0]["data"]["hangup_cause"] == "gateway_restart"
    types = [m["type"] for m in mine]
    assert types.index("call.answered") < types.index("call.failed")


async def test_kill_9_while_ringing_cancels_the_invite(tmp_path: Path) -> None:
    with SippUas("uas_ring_until_cancel", timeout=60) as uas:
        config = gateway_config(tmp_path, {"uri": f"sip:{uas.host}:{uas.port}"}, logging={"level": "INFO"})
        config["sip"]["port"] = free_port(udp=True, tcp=True)
        first = await asyncio.to_thread(GatewayProcess(config, tmp_path).start)
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
            r = await client.post("/v1/voice/calls", headers=H, json={"to": "+14155552671"})
            assert r.status_code == 201, r.text
            call_id = r.json()["data"]["id"]
            await _wait(client, f"/v1/voice/calls/{call_id}", lambda c: c["status"] == "ringing")
            await asyncio.sleep(0.5)  # the ringing status (and with it the INVITE) is stored
        await asyncio.to_thread(first.stop, signal.SIGKILL)

        second = await asyncio.to_thread(GatewayProcess(config, tmp_path).start)
        try:
            async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as client:
                call = await _wait(client, f"/v1/voice/calls/{call_id}", lambda c: c["status"] == "failed")
            result = await asyncio.to_thread(uas.wait, 15)
        finally:
            await asyncio.to_thread(second.stop)
    # INVITE, 100, 180, then from the restarted node: CANCEL, 200, 487, ACK.
    assert result.ok, result.describe()
    cancel = result.received("CANCEL")[0]
    invite = result.received("INVITE")[0]
    assert cancel.call_id == invite.call_id
    assert cancel.headers("Via")[0].split(";branch=")[1].split(";")[0] == invite.headers("Via")[0].split(";branch=")[1].split(";")[0]
    assert result.received("ACK")
    assert call["hangup_cause"] == "gateway_restart"
