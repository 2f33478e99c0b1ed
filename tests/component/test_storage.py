"""Recording storage against real peers: a moto S3 server, a SQLite call store, the local signed-URL route."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import httpx
import numpy as np
import pytest
import soundfile as sf
from boto3.s3.transfer import TransferConfig
from fastapi import FastAPI

from gateway.api import envelope
from gateway.api.recordings import recordings_router
from gateway.calls.views import call_view
from gateway.config import S3Config, Settings
from gateway.ids import new_call_id
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallStatus
from gateway.recordings import SIDECAR_SUFFIX, RecordingUploader, build_storage
from gateway.store.calls import CallStore
from gateway.store.commit import group_commit
from gateway.store.db import create_engine, migrate, session_factory
from gateway.store.records import Call
from media.recording import part_path
from media.storage import LocalStorage, MiB, RecordingStorage, S3Storage, UploadNotConfirmed
from tests.support.clock import wait_until
from tests.support.peers import free_port
from tests.support.peers.s3 import MotoServer

BUCKET = "recordings"
FAST = (0.3, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0)


# -- shared pieces ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.cleanup()


def s3_config(endpoint: str, bucket: str = BUCKET, **kw: object) -> S3Config:
    return S3Config(
        endpoint_url=endpoint,
        bucket=bucket,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        **kw,
    )


def s3_storage(endpoint: str, bucket: str = BUCKET, **kw: object) -> S3Storage:
    # Down-server tests should fail fast: one botocore try, one try of our own loop.
    kw.setdefault("attempts", 1)
    kw.setdefault("boto_max_attempts", 1)
    kw.setdefault("connect_timeout", 1.0)
    return S3Storage(s3_config(endpoint, bucket), **kw)  # type: ignore[arg-type]


METRICS = GatewayMetrics(process_metrics=False)


def _uploader(store: CallStore, storage: RecordingStorage, cfg: Settings, **kw: Any) -> RecordingUploader:
    return RecordingUploader(store, storage, cfg.storage.local_dir, metrics=METRICS, **kw)


def _build_storage(cfg: Settings, secret: str) -> RecordingStorage:
    return build_storage(cfg.storage, cfg.http.public_url, secret)


def settings(tmp: Path, backend: str = "s3", endpoint: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        storage={
            "backend": backend,
            "local_dir": str(tmp / "recordings"),
            "s3": {"endpoint_url": endpoint, "bucket": BUCKET},
        },
        http={"public_url": "http://gw.test", "signing_secret": "test-signing-secret"},
    )


class Db:
    def __init__(self, tmp: Path) -> None:
        self.engine = create_engine(f"sqlite+aiosqlite:///{tmp}/calls.db")
        sessions = session_factory(self.engine)
        self.writes = group_commit(self.engine, sessions)
        self.store = CallStore(sessions, self.writes, lambda c: [], render=call_view)

    async def ended_call(self, status: CallStatus = CallStatus.COMPLETED) -> Call:
        now = datetime.now(UTC)
        call = Call(
            id=new_call_id(), account_id="acct_a", to="+14155552671", from_="+12025551234", agent_id=None,
            status=CallStatus.INITIATING, record=True, max_duration=60, metadata={}, webhook_url=None,
            created_at=now, recording_state="pending",
        )  # fmt: skip
        await self.store.insert(call)
        await self.store.transition(call.id, CallStatus.IN_PROGRESS, now)
        if status.terminal:
            await self.store.transition(call.id, status, now)
        got = await self.store.get(call.id)
        assert got is not None
        return got


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    d = Db(tmp_path)
    await migrate(d.engine)
    yield d
    await d.writes.close()
    await d.engine.dispose()


async def record(uploader: RecordingUploader, call: Call, seconds: float = 1.0) -> Path:
    """Record a call the way the media session does: 1 kHz caller, 440 Hz agent."""
    rec = await uploader.open_recorder(call)
    t = np.arange(int(8000 * seconds)) / 8000
    left = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    right = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    for i in range(0, len(left), 160):
        rec.on_frames(left[i : i + 160].tobytes(), right[i : i + 160].tobytes(), i / 8000)
    return rec.close().path


def boto_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def ensure_bucket(endpoint: str, bucket: str = BUCKET) -> None:
    client = boto_client(endpoint)
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)


def sidecar(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.with_name(path.name + SIDECAR_SUFFIX).read_text())
    return data


# -- S3Storage on a real moto server ---------------------------------------------------------------


@pytest.mark.interop
async def test_put_small_and_multipart_then_presigned_get(moto: MotoServer, tmp_path: Path) -> None:
    storage = s3_storage(moto.endpoint_url, "objects")
    await storage.ensure_bucket()
    try:
        small = tmp_path / "small.wav"
        small.write_bytes(os.urandom(100_000))
        big = tmp_path / "big.wav"
        big.write_bytes(os.urandom(17 * MiB))  # default threshold 8 MiB, 8 MiB parts: 3 parts

        for path, key in ((small, "r/acct/small.wav"), (big, "r/acct/big.wav")):
            await storage.put(path, key)
            head = await storage.head(key)
            assert head["ContentLength"] == path.stat().st_size
            assert head["ContentType"] == "audio/wav"
            url = storage.url_for(key)
            assert "X-Amz-Expires=3600" in url and url.startswith(f"{moto.endpoint_url}/objects/r/acct/")
            async with httpx.AsyncClient(trust_env=False) as client:
                got = await client.get(url)
            assert got.status_code == 200
            assert got.content == path.read_bytes()
            assert await storage.get_bytes(key) == path.read_bytes()

        assert "-" not in (await storage.head("r/acct/small.wav"))["ETag"]
        assert (await storage.head("r/acct/big.wav"))["ETag"].strip('"').endswith("-3")
        assert small.exists() and big.exists()  # put never deletes: the uploader does, after put returns
    finally:
        await storage.close()


@pytest.mark.interop
async def test_lowered_threshold_uses_multipart(moto: MotoServer, tmp_path: Path) -> None:
    transfer = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
    storage = s3_storage(moto.endpoint_url, "objects", transfer_config=transfer)
    await storage.ensure_bucket()
    try:
        f = tmp_path / "mid.wav"
        f.write_bytes(os.urandom(6 * MiB))
        await storage.put(f, "mid.wav")
        head = await storage.head("mid.wav")
        assert head["ContentLength"] == 6 * MiB and head["ETag"].strip('"').endswith("-2")
    finally:
        await storage.close()


@pytest.mark.interop
async def test_event_loop_is_not_blocked_during_upload(moto: MotoServer, tmp_path: Path) -> None:
    storage = s3_storage(moto.endpoint_url, "objects")
    await storage.ensure_bucket()
    f = tmp_path / "loop.wav"
    f.write_bytes(os.urandom(20 * MiB))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)  # what is measured: how late a 20 ms wait wakes while uploading

    task = asyncio.create_task(ticker())
    try:
        await storage.put(f, "loop.wav")
    finally:
        task.cancel()
        await storage.close()
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.max() < 0.25


@pytest.mark.interop
async def test_size_mismatch_is_not_a_confirmed_upload(moto: MotoServer, tmp_path: Path) -> None:
    storage = s3_storage(moto.endpoint_url, "objects", attempts=2, backoff_seconds=0.01)
    await storage.ensure_bucket()
    real_head = storage._client.head_object
    storage._client.head_object = lambda **kw: {**real_head(**kw), "ContentLength": 1}
    f = tmp_path / "x.wav"
    f.write_bytes(b"0123456789")
    try:
        with pytest.raises(UploadNotConfirmed):
            await storage.put(f, "x.wav")
    finally:
        await storage.close()


async def test_public_url_mode() -> None:
    cfg = s3_config("http://127.0.0.1:9", url_mode="public", public_base_url="https://cdn.example.com/rec/")
    storage = S3Storage(cfg)
    try:
        assert storage.url_for("recordings/acct_a/call 1.wav") == (
            "https://cdn.example.com/rec/recordings/acct_a/call%201.wav"
        )
        assert storage.key_for("acct_a", "call_1") == "recordings/acct_a/call_1.wav"
    finally:
        await storage.close()


# -- the uploader ----------------------------------------------------------------------------------


@pytest.mark.interop
async def test_uploader_retries_until_the_server_comes_up(db: Db, tmp_path: Path) -> None:
    port = free_port(udp=False)
    endpoint = f"http://127.0.0.1:{port}"
    storage = s3_storage(endpoint)
    uploader = _uploader(
        db.store, storage, settings(tmp_path, endpoint=endpoint), retry_schedule=FAST
    )
    call = await db.ended_call()
    path = await record(uploader, call)
    original = path.read_bytes()

    await uploader.submit(call.id, path)
    got = await db.store.get(call.id)
    assert got is not None and got.recording_state == "pending"
    assert got.recording_key == f"recordings/acct_a/{call.id}.wav"
    await wait_until(lambda: int(sidecar(path)["attempts"]) >= 1, timeout=15)  # type: ignore[call-overload]
    assert uploader.pending() == [call.id]

    server = MotoServer(port).start()
    try:
        ensure_bucket(endpoint)
        await asyncio.wait_for(uploader.join(), 30)
        got = await db.store.get(call.id)
        assert got is not None
        assert got.recording_state == "available" and got.status == CallStatus.COMPLETED
        events = [e.type for e in await db.store.events(call.id)]
        assert events[-1] == "call.recording_ready" and events.count("call.recording_ready") == 1
        ready = (await db.store.events(call.id))[-1].payload["data"]
        assert ready["recording_status"] == "available"
        assert await storage.get_bytes(got.recording_key or "") == original
        # Confirmed upload: the local copy and the sidecar are gone.
        assert not path.exists() and not path.with_name(path.name + SIDECAR_SUFFIX).exists()
        url = uploader.recording_url(got)
        assert url is not None and "X-Amz-Signature=" in url
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(url)).content == original
        assert await uploader.recording_url_by_id(call.id) is not None
    finally:
        await uploader.stop()
        await storage.close()
        server.cleanup()


async def test_uploader_gives_up_without_failing_the_call(db: Db, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port(udp=False)}"
    storage = s3_storage(endpoint)
    uploader = _uploader(
        db.store, storage, settings(tmp_path, endpoint=endpoint), retry_schedule=(0.05, 0.05)
    )
    call = await db.ended_call()
    path = await record(uploader, call, 0.2)
    await uploader.submit(call.id, path)
    await asyncio.wait_for(uploader.join(), 30)
    got = await db.store.get(call.id)
    assert got is not None
    assert got.recording_state == "failed" and got.status == CallStatus.COMPLETED
    assert uploader.recording_url(got) is None
    assert path.exists()  # kept for an operator
    assert not path.with_name(path.name + SIDECAR_SUFFIX).exists()
    assert "call.recording_ready" not in [e.type for e in await db.store.events(call.id)]
    await storage.close()


async def test_missing_file_marks_failed(db: Db, tmp_path: Path) -> None:
    storage = s3_storage("http://127.0.0.1:9")
    uploader = _uploader(db.store, storage, settings(tmp_path))
    call = await db.ended_call(CallStatus.NO_ANSWER)
    await uploader.submit(call.id, tmp_path / "never-recorded.wav")
    got = await db.store.get(call.id)
    assert got is not None and got.recording_state == "failed" and uploader.pending() == []
    await storage.close()


CRASHER = """
import os, sys
import numpy as np
from media.recording import StereoRecorder
rec = StereoRecorder(sys.argv[1])
for i in range(140):
    rec.on_frames(np.full(160, 1000, "<i2").tobytes(), np.full(160, -1000, "<i2").tobytes(), i * 0.02)
os._exit(9)
"""


@pytest.mark.interop
async def test_resume_after_restart(db: Db, moto: MotoServer, tmp_path: Path) -> None:
    ensure_bucket(moto.endpoint_url)
    dead = f"http://127.0.0.1:{free_port(udp=False)}"
    cfg = settings(tmp_path, endpoint=moto.endpoint_url)

    # 1. An upload that failed once before the process stopped (next try in 30 s).
    first_storage = s3_storage(dead)
    first = _uploader(db.store, first_storage, cfg, retry_schedule=(30.0,))
    retried = await db.ended_call()
    retried_path = await record(first, retried)
    retried_bytes = retried_path.read_bytes()
    await first.submit(retried.id, retried_path)
    await wait_until(lambda: int(sidecar(retried_path)["attempts"]) == 1, timeout=15)  # type: ignore[call-overload]

    # 2. A recording that was being written when the process died (sidecar from open_recorder).
    crashed = await db.ended_call()
    rec = await first.open_recorder(crashed)
    for i in range(100):
        rec.on_frames(b"\x10\x00" * 160, b"\x20\x00" * 160, i * 0.02)
    rec.flush()
    frozen = part_path(rec.path).read_bytes()  # what the disk held at the crash
    rec.abort()
    part_path(rec.path).write_bytes(frozen)

    # 3. A process killed mid-recording before any sidecar existed: only the .wav.part remains.
    orphan = await db.ended_call(CallStatus.FAILED)
    orphan_path = first.path_for(orphan.account_id, orphan.id)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    assert (
        subprocess.run([sys.executable, "-c", CRASHER, str(orphan_path)], env=env, timeout=60).returncode == 9
    )

    # 4. A live call's recording is not touched.
    live = await db.ended_call(CallStatus.IN_PROGRESS)
    live_rec = await first.open_recorder(live)
    live_rec.on_frames(b"\x00" * 320, b"\x00" * 320, 0.0)

    await first.stop()
    await first_storage.close()
    assert sidecar(retried_path)["attempts"] == 1

    # The restarted process: its clock is past the persisted next attempt.
    storage = s3_storage(moto.endpoint_url)
    second = _uploader(db.store, storage, cfg, retry_schedule=FAST, clock=lambda: time.time() + 60)
    try:
        assert await second.resume() == 3
        await asyncio.wait_for(second.join(), 30)
        for call in (retried, crashed, orphan):
            got = await db.store.get(call.id)
            assert got is not None and got.recording_state == "available", call.id
            assert "call.recording_ready" in [e.type for e in await db.store.events(call.id)]
        got = await db.store.get(retried.id)
        assert got is not None and await storage.get_bytes(got.recording_key or "") == retried_bytes

        crashed_wav = tmp_path / "crashed.wav"
        crashed_wav.write_bytes(await storage.get_bytes(f"recordings/acct_a/{crashed.id}.wav"))
        data, _ = sf.read(crashed_wav, dtype="int16")
        assert len(data) == 100 * 160 and (data[:, 0] == 16).all() and (data[:, 1] == 32).all()

        orphan_wav = tmp_path / "orphan.wav"
        orphan_wav.write_bytes(await storage.get_bytes(f"recordings/acct_a/{orphan.id}.wav"))
        data, _ = sf.read(orphan_wav, dtype="int16")
        assert len(data) == 125 * 160  # 140 frames fed, the last 15 were still buffered
        assert (data[:, 0] == 1000).all() and (data[:, 1] == -1000).all()

        # Nothing left to do for the finished ones; the live call keeps its file.
        assert list((tmp_path / "recordings").rglob("*.json")) == [
            live_rec.path.with_name(live_rec.path.name + SIDECAR_SUFFIX)
        ]
        assert part_path(live_rec.path).exists()
        assert await second.resume() == 0
    finally:
        live_rec.close()
        await second.stop()
        await storage.close()


# -- the local backend and its signed-URL route ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def local_app(storage: LocalStorage) -> FastAPI:
    app = FastAPI()
    envelope.install(app, max_body_bytes=65536)
    app.include_router(recordings_router(lambda: storage))
    return app


async def test_local_upload_and_signed_route(db: Db, tmp_path: Path) -> None:
    cfg = settings(tmp_path, backend="local")
    clock = Clock()
    storage = _build_storage(cfg, "test-signing-secret")
    assert isinstance(storage, LocalStorage)
    storage._clock = clock
    uploader = _uploader(db.store, storage, cfg)
    call = await db.ended_call()
    path = await record(uploader, call)
    original = path.read_bytes()
    await uploader.submit(call.id, path)
    await asyncio.wait_for(uploader.join(), 10)
    got = await db.store.get(call.id)
    assert got is not None and got.recording_state == "available"
    assert got.recording_key == f"acct_a/{call.id}.wav"
    assert path.exists() and not path.with_name(path.name + SIDECAR_SUFFIX).exists()  # stays in place
    assert [e.type for e in await db.store.events(call.id)][-1] == "call.recording_ready"

    url = uploader.recording_url(got)
    assert url is not None and url.startswith(f"http://gw.test/v1/voice/recordings/acct_a/{call.id}.wav?")
    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    transport = httpx.ASGITransport(app=local_app(storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
        ok = await client.get(url)
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"] == "audio/wav" and ok.content == original

        head = await client.head(url)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(original)
        part = await client.get(url, headers={"Range": "bytes=0-43"})
        assert part.status_code == 206 and part.content == original[:44]

        def with_query(**changes: str) -> str:
            return f"{split.path}?{urlencode({**query, **changes})}"

        for bad in (
            with_query(signature="0" * 64),
            with_query(expires=str(int(query["expires"]) + 3600)),
            f"{split.path.replace(call.id, 'call_other')}?{split.query}",
            split.path,
        ):
            r = await client.get(bad)
            assert r.status_code == 403, bad
            assert r.json()["error"]["code"] == "FORBIDDEN" and r.json()["error"]["status"] == 403

        # A valid signature for a key with no file.
        missing = storage.url_for("acct_a/call_none.wav")
        r = await client.get(missing)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"

        clock.now += cfg.storage.url_ttl_seconds + 1
        r = await client.get(url)
        assert r.status_code == 403 and r.json()["error"]["code"] == "RECORDING_URL_EXPIRED"
        assert "request_id" in r.json()["meta"]
        fresh = uploader.recording_url(got)
        assert fresh is not None and (await client.get(fresh)).content == original


async def test_route_refuses_traversal_and_s3_backend(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "rec", "http://gw.test", b"k" * 32, 60)
    (tmp_path / "secret.wav").write_bytes(b"secret")
    transport = httpx.ASGITransport(app=local_app(storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
        expires = int(time.time()) + 60
        sig = storage.signature("../secret.wav", expires)
        r = await client.get(f"/v1/voice/recordings/..%2Fsecret.wav?expires={expires}&signature={sig}")
        assert r.status_code in (403, 404) and b"secret" not in r.content

    s3 = s3_storage("http://127.0.0.1:9")
    app = FastAPI()
    envelope.install(app, max_body_bytes=65536)
    app.include_router(recordings_router(lambda: s3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        r = await client.get("/v1/voice/recordings/a/b.wav?expires=1&signature=x")
        assert r.status_code == 404
    await s3.close()


async def test_mark_not_recorded(db: Db, tmp_path: Path) -> None:
    storage = s3_storage("http://127.0.0.1:9")
    uploader = _uploader(db.store, storage, settings(tmp_path))
    call = await db.ended_call(CallStatus.BUSY)
    assert call.recording_state == "pending"
    await uploader.mark_not_recorded(call.id)
    got = await db.store.get(call.id)
    assert got is not None and got.recording_state is None and uploader.recording_url(got) is None
    await storage.close()


async def test_file_recorded_elsewhere_is_moved_under_local_dir(db: Db, tmp_path: Path) -> None:
    cfg = settings(tmp_path, backend="local")
    storage = _build_storage(cfg, "test-signing-secret")
    uploader = _uploader(db.store, storage, cfg)
    call = await db.ended_call()
    elsewhere = tmp_path / "elsewhere.wav"
    elsewhere.write_bytes(b"RIFF-not-really")
    await uploader.submit(call.id, elsewhere)
    await asyncio.wait_for(uploader.join(), 10)
    assert not elsewhere.exists()
    assert uploader.path_for("acct_a", call.id).read_bytes() == b"RIFF-not-really"
    got = await db.store.get(call.id)
    assert got is not None and got.recording_state == "available"
    assert await storage.get_bytes(got.recording_key or "") == b"RIFF-not-really"
