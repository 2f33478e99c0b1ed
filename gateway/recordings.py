"""A call's recording after the call: upload with retries that survive restarts, URLs, and the local route.

Lifecycle of one recording (``<dir>`` = ``storage.local_dir/<account_id>``):

1. ``await uploader.open_recorder(call)`` when the call is answered: a
   :class:`media.recording.StereoRecorder` writing ``<dir>/<call_id>.wav.part``, and a
   sidecar ``<dir>/<call_id>.wav.upload.json`` that says a recording is in progress.
2. ``info = recorder.close(now)`` when the media ends: the file becomes ``<call_id>.wav``.
3. ``await uploader.submit(call_id, info.path)``: the call gets ``recording_state
   "pending"`` and its key, and a background task stores the file. Success records
   ``call.recording_ready`` (state ``available``) and removes the sidecar (and, for
   S3, the local copy, which ``put`` only returns after HEAD confirmed the size).
   Failures retry on ``retry_schedule`` (1 s, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h);
   the attempt count and next time are kept in the sidecar. After the last retry the
   state is ``failed`` and the local file is kept for an operator. Nothing here ever
   changes the call's status.
4. ``await uploader.resume()`` at start: every sidecar and every ``*.wav.part`` left
   by a crash is picked up again (unfinished WAVs are repaired first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.config import StorageConfig
from gateway.metrics import GatewayMetrics
from gateway.store.calls import CallStore
from gateway.store.records import Call
from gateway.timeutil import utcnow
from media.recording import (
    PART_SUFFIX,
    StereoRecorder,
    WavRepairError,
    find_unfinished,
    finish_unfinished,
    part_path,
)
from media.storage import (
    InvalidKey,
    LocalStorage,
    RecordingStorage,
    S3Storage,
)

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "SIDECAR_SUFFIX",
    "RecordingUploader",
    "build_storage",
    "recording_signing_key",
    "recording_url",
]

log = logging.getLogger("gateway.recordings")

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
SIDECAR_SUFFIX = ".upload.json"
READY_EVENT = "call.recording_ready"


def recording_signing_key(secret: str | bytes) -> bytes:
    """A key for recording URLs only, derived from the gateway's signing secret (kept apart from cursors)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"orbit-recording-url-v1", hashlib.sha256).digest()


def build_storage(cfg: StorageConfig, public_url: str, signing_secret: str | bytes) -> RecordingStorage:
    """The configured backend. `signing_secret` is the gateway's signing secret (local URLs are
    signed with a key derived from it and served under `public_url`)."""
    if cfg.backend == "s3":
        return S3Storage(cfg.s3)
    return LocalStorage(cfg.local_dir, public_url, recording_signing_key(signing_secret), cfg.url_ttl_seconds)


def recording_url(call: Call, storage: RecordingStorage) -> str | None:
    """The URL the API shows: only once the recording is available."""
    if call.recording_state != "available" or not call.recording_key:
        return None
    try:
        return storage.url_for(call.recording_key)
    except InvalidKey:
        log.error("stored recording key is not valid", extra={"call_id": call.id})
        return None


@dataclass(slots=True)
class _Job:
    call_id: str
    account_id: str
    key: str
    path: str  # the finished .wav
    state: str = "recording"  # recording -> uploading
    attempts: int = 0
    next_attempt_at: float = 0.0

    @property
    def wav(self) -> Path:
        return Path(self.path)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.wav)


def sidecar_path(wav: Path) -> Path:
    return wav.with_name(wav.name + SIDECAR_SUFFIX)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _read_job(path: Path) -> _Job | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _Job(**data)
    except (OSError, ValueError, TypeError):
        return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class RecordingUploader:
    def __init__(
        self,
        store: CallStore,
        storage: RecordingStorage,
        local_dir: Path,
        *,
        metrics: GatewayMetrics,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        max_concurrent: int = 4,
        attempt_timeout: float | None = 1800.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.storage = storage
        self.local_dir = Path(local_dir)
        self._metrics = metrics
        self.retry_schedule = tuple(retry_schedule)
        self._attempt_timeout = attempt_timeout
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._uploading: set[str] = set()

    # -- where the media session records --------------------------------------------------

    def path_for(self, account_id: str, call_id: str) -> Path:
        """Where a call's finished recording is written (under local_dir, for every backend)."""
        return self.local_dir / account_id / f"{call_id}.wav"

    async def open_recorder(self, call: Call, sample_rate: int = 8000) -> StereoRecorder:
        """Start recording `call`: the recorder, plus the sidecar that lets a restart find the file."""
        path = self.path_for(call.account_id, call.id)
        job = _Job(call.id, call.account_id, self.storage.key_for(call.account_id, call.id), str(path))

        def _open() -> StereoRecorder:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_json(job.sidecar, asdict(job))
            return StereoRecorder(path, sample_rate=sample_rate)

        return await asyncio.to_thread(_open)

    # -- upload -----------------------------------------------------------------------------

    async def submit(self, call_id: str, local_path: str | os.PathLike[str]) -> None:
        """Mark the recording pending and store it in the background. Never raises for upload trouble."""
        if call_id in self._tasks:
            return
        call = await self.store.get(call_id)
        if call is None:
            log.warning("recording for an unknown call", extra={"call_id": call_id})
            return
        path = self.path_for(call.account_id, call.id)
        key = self.storage.key_for(call.account_id, call.id)
        job = _Job(call.id, call.account_id, key, str(path), state="uploading", next_attempt_at=self._clock())
        ok = await asyncio.to_thread(self._adopt, Path(local_path), path) and await asyncio.to_thread(
            self._prepare, job
        )
        if not ok:
            log.error("recording file is missing", extra={"call_id": call_id, "path": str(local_path)})
            await self.store.update(call_id, recording_state="failed")
            await asyncio.to_thread(_unlink, job.sidecar)
            return
        await self.store.update(call_id, recording_state="pending", recording_key=key)
        self._spawn(job)

    async def mark_not_recorded(self, call_id: str) -> None:
        """For a call that asked for a recording but never had media (busy, no answer...): status null."""
        await self.store.update(call_id, recording_state=None, recording_key=None)

    @staticmethod
    def _adopt(given: Path, canonical: Path) -> bool:
        # Recordings live at path_for(), where resume() looks for them after a restart.
        if given == canonical or given == part_path(canonical):
            return True
        if not given.is_file():
            return False
        canonical.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(given, canonical)
        return True

    @staticmethod
    def _prepare(job: _Job) -> bool:
        wav = job.wav
        part = part_path(wav)
        if not wav.exists() and part.exists():
            # The recorder was not closed (its task died): finish the file as a crash would be.
            try:
                finish_unfinished(part)
            except (WavRepairError, OSError):
                return False
        if not wav.is_file():
            return False
        _write_json(job.sidecar, asdict(job))
        return True

    def _spawn(self, job: _Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"recording-upload-{job.call_id}")
        self._tasks[job.call_id] = task
        task.add_done_callback(functools.partial(self._done, job.call_id))

    def _done(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(call_id) is task:
            del self._tasks[call_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("recording upload task failed", extra={"call_id": call_id}, exc_info=task.exception())

    async def _run(self, job: _Job) -> None:
        while True:
            delay = job.next_attempt_at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with self._slots:
                    self._uploading.add(job.call_id)
                    try:
                        await asyncio.wait_for(
                            self.storage.put(job.wav, job.key), timeout=self._attempt_timeout
                        )
                        call = await self.store.add_event(
                            job.call_id,
                            READY_EVENT,
                            utcnow(),
                            recording_state="available",
                            recording_key=job.key,
                        )
                    finally:
                        self._uploading.discard(job.call_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.recording_upload("failed")
                job.attempts += 1
                if job.attempts > len(self.retry_schedule):
                    log.error(
                        "recording upload failed for good",
                        extra={"call_id": job.call_id, "attempts": job.attempts, "error": repr(exc)},
                    )
                    await self._give_up(job)
                    return
                job.next_attempt_at = self._clock() + self.retry_schedule[job.attempts - 1]
                log.warning(
                    "recording upload failed, will retry",
                    extra={
                        "call_id": job.call_id,
                        "attempts": job.attempts,
                        "retry_in": self.retry_schedule[job.attempts - 1],
                        "error": repr(exc),
                    },
                )
                await asyncio.to_thread(_write_json, job.sidecar, asdict(job))
                continue
            self._metrics.recording_upload("ok")
            if call is None:
                log.warning("call vanished before its recording was stored", extra={"call_id": job.call_id})
            log.info("recording stored", extra={"call_id": job.call_id, "key": job.key})
            await asyncio.to_thread(self._cleanup, job)
            return

    def _cleanup(self, job: _Job) -> None:
        if not self.storage.retains_local_file:
            _unlink(job.wav)
        _unlink(job.sidecar)

    async def _give_up(self, job: _Job) -> None:
        try:
            await self.store.update(job.call_id, recording_state="failed")
        except Exception:
            # Leave the sidecar: the next start tries again rather than losing the outcome.
            log.exception("could not mark the recording failed", extra={"call_id": job.call_id})
            return
        await asyncio.to_thread(_unlink, job.sidecar)

    # -- restart ------------------------------------------------------------------------------

    async def resume(self) -> int:
        """Pick up what a previous process left: repair unfinished WAVs, retry pending uploads.

        Call it at start, after calls left live by a crash have been ended (only recordings of
        calls in a final status are touched). Returns how many uploads were scheduled.
        """
        scheduled = 0
        sidecars = await asyncio.to_thread(self._sidecars)
        parts = await asyncio.to_thread(find_unfinished, self.local_dir)
        known = {str(part_path(j.wav)) for j in sidecars}
        for part in parts:
            if str(part) not in known:
                scheduled += await self._resume_orphan_part(part)
        for job in sidecars:
            scheduled += await self._resume_job(job)
        return scheduled

    def _sidecars(self) -> list[_Job]:
        if not self.local_dir.is_dir():
            return []
        jobs = []
        for path in sorted(self.local_dir.rglob(f"*.wav{SIDECAR_SUFFIX}")):
            job = _read_job(path)
            if job is None or sidecar_path(job.wav) != path:
                log.error("unreadable recording sidecar", extra={"path": str(path)})
                continue
            jobs.append(job)
        return jobs

    async def _resume_orphan_part(self, part: Path) -> int:
        """A `.wav.part` without a sidecar: attribute it by its name (<account>/<call_id>.wav.part)."""
        call_id = part.name.removesuffix(PART_SUFFIX).removesuffix(".wav")
        call = await self.store.get(call_id)
        if call is None or call.account_id != part.parent.name:
            log.warning("unfinished recording of no known call", extra={"path": str(part)})
            return 0
        wav = part.with_name(part.name.removesuffix(PART_SUFFIX))
        job = _Job(call.id, call.account_id, self.storage.key_for(call.account_id, call.id), str(wav))
        return await self._resume_job(job, call)

    async def _resume_job(self, job: _Job, call: Call | None = None) -> int:
        if job.call_id in self._tasks:
            return 0
        call = call or await self.store.get(job.call_id)
        if call is None:
            log.warning("recording of a deleted call", extra={"call_id": job.call_id})
            await asyncio.to_thread(_unlink, job.sidecar)
            return 0
        if not call.status.terminal:
            return 0  # still live (or not yet reconciled): its media session owns the file
        if call.recording_state == "available":
            await asyncio.to_thread(self._cleanup, job)
            return 0
        if call.recording_state == "failed":
            await asyncio.to_thread(_unlink, job.sidecar)
            return 0
        job.state = "uploading"
        ok = await asyncio.to_thread(self._prepare, job)
        if not ok:
            log.error("recording could not be recovered", extra={"call_id": job.call_id})
            await self.store.update(job.call_id, recording_state="failed")
            await asyncio.to_thread(_unlink, job.sidecar)
            return 0
        if call.recording_state != "pending" or call.recording_key != job.key:
            await self.store.update(job.call_id, recording_state="pending", recording_key=job.key)
        self._spawn(job)
        return 1

    # -- lifecycle and views ------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Call ids with an upload scheduled or running in this process."""
        return list(self._tasks)

    async def join(self) -> None:
        """Wait until every scheduled upload has finished (tests, graceful drains)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let running uploads finish for up to `grace_seconds`, then cancel; sidecars keep the rest."""
        running = [t for cid, t in self._tasks.items() if cid in self._uploading]
        if running and grace_seconds > 0:
            await asyncio.wait(running, timeout=grace_seconds)
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def recording_url(self, call: Call) -> str | None:
        return recording_url(call, self.storage)

    async def recording_url_by_id(self, call_id: str) -> str | None:
        """For the webhook dispatcher (`recording_url=` of WebhookDispatcher)."""
        call = await self.store.get(call_id)
        return self.recording_url(call) if call is not None else None


# -- GET /v1/voice/recordings/{key} -------------------------------------------------------------
