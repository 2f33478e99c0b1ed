"""A real call end to end through the REST API: baresip answers and plays a tone, the example
echo agent (each protocol) sends it back, the call is recorded in stereo, uploaded to an
S3-compatible server, fetched through recording_url, and signed webhooks arrive in order."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from gateway.webhooks.signing import verify
from tests.interop.conftest import gateway_config, running_gateway
from tests.support.peers.audio import tone_power
from tests.support.peers.baresip import Baresip
from tests.support.peers.s3 import MotoServer
from tests.support.processes import ScriptProcess
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.interop
SECRET = "whsec_e2e_secret"
CALLEE_TONE = 440.0

AGENTS = {
    "orbit-voice": ("examples/echo_agent.py", {"protocol": "orbit-voice", "sample_rate": 16000}),
    "twilio": ("examples/twilio_echo_agent.py", {"protocol": "twilio", "sample_rate": 8000}),
}


@pytest.mark.parametrize("protocol", list(AGENTS))
async def test_agent_call_recorded_uploaded_and_webhooked(tmp_path: Path, protocol: str) -> None:
    script, agent_cfg = AGENTS[protocol]
    receiver = WebhookReceiver()
    await receiver.start()
    moto = MotoServer().start()
    try:
        with Baresip(user="+14155552671", source_tone=CALLEE_TONE) as phone, ScriptProcess(script) as agent:
            config = gateway_config(
                tmp_path,
                {"uri": f"sip:{phone.address}"},
                webhooks={"allow_private_targets": True, "retry_schedule_seconds": [0, 1, 1]},
                storage={
                    "backend": "s3",
                    "s3": {
                        "endpoint_url": moto.endpoint_url,
                        "bucket": "recordings",
                        "access_key_id": moto.access_key,
                        "secret_access_key": moto.secret_key,
                        "region": moto.region,
                    },
                },
            )
            moto.client().create_bucket(Bucket="recordings")
            config["accounts"][0]["webhook_secret"] = SECRET
            config["agents"] = [{"id": "agt_echo", "url": f"ws://127.0.0.1:{agent.port}/", **agent_cfg}]
            async with running_gateway(config) as gw:
                call = await gw.create(agent_id="agt_echo", record=True, webhook_url=receiver.url)
                await gw.wait_status(call["id"], "in_progress", timeout=15)
                await asyncio.sleep(3.0)
                live = await gw.playout()
                r = await gw.hangup(call["id"])
                assert r.json()["data"]["status"] == "completed", r.text
                done = await _wait_recording(gw, call["id"])
                url = done["recording_url"]
                async with httpx.AsyncClient() as client:
                    wav = (await client.get(url)).content
                stored = _s3_object(config, done)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and len(receiver.received) < 5:
                    await asyncio.sleep(0.1)
                after = await gw.playout()
            heard_path = phone.recording("dec", timeout=10)
    finally:
        moto.stop()
        await receiver.stop()

    # What the user sees.
    assert done["status"] == "completed" and done["hangup_cause"] == "api_hangup"
    assert done["recording_status"] == "available"
    summary = done["agent_summary"]
    assert summary["protocol"] == protocol and summary["agent_id"] == "agt_echo"
    assert summary["caller_audio_ms"] > 1000 and summary["agent_audio_ms"] > 1000
    assert done["media_stats"]["packets_in"] > 50 and done["media_stats"]["packets_out"] > 50
    # /metrics counts the live call's playout as it happens, and keeps it after the call.
    played = done["media_stats"]["jitter_buffer"]["played"]
    assert live["played"] > 50 and live["played"] <= after["played"]
    assert abs(after["played"] - played) <= 2, (after, played)
    assert after["dropped"] == done["media_stats"]["jitter_buffer"]["dropped"]
    assert after["trimmed"] == done["media_stats"]["jitter_buffer"]["trimmed"]

    # The recording fetched through recording_url is the uploaded object, byte for byte.
    assert wav == stored
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == 8000 and audio.shape[1] == 2
    left, right = audio[:, 0], audio[:, 1]
    duration = len(audio) / rate
    answered_to_end = _seconds(done["answered_at"], done["ended_at"])
    assert abs(duration - answered_to_end) <= 1.0 + 0.02  # timestamps are whole seconds
    # Left: the callee's tone. Right: the agent's echo of it, as played out.
    assert tone_power(left[rate:].astype(np.int16), rate, CALLEE_TONE) > 0.5
    assert tone_power(right[rate:].astype(np.int16), rate, CALLEE_TONE) > 0.5

    # baresip heard the agent (the echo of its own tone).
    heard, heard_rate = soundfile.read(str(heard_path), dtype="int16")
    assert tone_power(heard[heard_rate:], heard_rate, CALLEE_TONE) > 0.5

    # Webhooks: in order, signed with the account's secret.
    types = [r.json["type"] for r in receiver.received if r.json["data"]["id"] == call["id"]]
    assert types[:4] == ["call.initiated", "call.ringing", "call.answered", "call.completed"] or types[:3] == [
        "call.initiated", "call.answered", "call.completed"]
    assert "call.recording_ready" in types
    for r in receiver.received:
        assert verify(SECRET, r.headers["x-devotel-signature"], r.body, int(time.time()))


async def _wait_recording(gw, call_id: str) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        call = await gw.get(call_id)
        if call["recording_status"] in ("available", "failed"):
            return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"recording never finished: {call}")


def _s3_object(config: dict, call: dict) -> bytes:  # type: ignore[type-arg]
    import boto3

    s3 = config["storage"]["s3"]
    client = boto3.client(
        "s3", endpoint_url=s3["endpoint_url"], aws_access_key_id=s3["access_key_id"],
        aws_secret_access_key=s3["secret_access_key"], region_name=s3["region"],
    )
    objects = client.list_objects_v2(Bucket="recordings")["Contents"]
    key = next(o["Key"] for o in objects if call["id"] in o["Key"])
    return bytes(client.get_object(Bucket="recordings", Key=key)["Body"].read())


def _seconds(a: str, b: str) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (datetime.strptime(b, fmt) - datetime.strptime(a, fmt)).total_seconds()
