"""The running gateway: wires configuration, store, call service and backend into one app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from gateway import metrics
from gateway.api import envelope
from gateway.api.auth import Keyring
from gateway.api.calls import router as calls_router
from gateway.api.cursor import CursorCodec
from gateway.api.schemas import Health
from gateway.calls.backend import CallBackend
from gateway.calls.dialer import SipDialer
from gateway.calls.model import Call
from gateway.calls.service import CallService
from gateway.calls.views import call_view
from gateway.config import Settings
from gateway.errors import ServiceUnavailable
from gateway.logs import call_id_var
from gateway.outcome import CallStatus, HangupCause, HangupSide
from gateway.recordings import RecordingUploader, build_storage, recordings_router
from gateway.store.calls import CallStore
from gateway.store.commit import group_commit
from gateway.store.db import create_engine, migrate, session_factory
from gateway.store.nodes import NodeStore
from gateway.timeutil import utcnow
from gateway.webhooks.delivery import WebhookDispatcher
from media.storage import RecordingStorage

log = logging.getLogger("gateway")

BackendFactory = Callable[[Settings], CallBackend]


class Gateway:
    """Everything a request handler needs, built once per process."""

    def __init__(self, settings: Settings, backend: CallBackend, node_id: str | None = None) -> None:
        self.settings = settings
        # Stable across restarts, so a node reconciles the calls its previous run left behind.
        self.node_id = node_id or settings.node_id or socket.gethostname()
        self.engine = create_engine(settings.database.url)
        self.sessions = session_factory(self.engine)
        self.writes = group_commit(self.engine, self.sessions)
        self.store = CallStore(self.sessions, self.writes, self._webhook_targets)
        self.webhooks = WebhookDispatcher(self.sessions, self.writes, settings)
        self.store.on_event = self.webhooks.wake
        self.backend = backend
        self.calls = CallService(settings, self.store, backend, self.node_id)
        self.keyring = Keyring(settings)
        self.cursors = CursorCodec(b"")
        self.draining = False
        self.recording_storage: RecordingStorage | None = None
        self.recordings: RecordingUploader | None = None
        self.nodes = NodeStore(self.sessions, self.writes)
        self._heartbeat: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[int] | None = None

    def _webhook_targets(self, call: Call) -> list[str]:
        targets = [call.webhook_url] if call.webhook_url else []
        account = self.settings.account(call.account_id)
        if account is not None and account.webhook_url:
            targets.append(account.webhook_url)
        return targets

    async def start(self) -> None:
        await migrate(self.engine)
        configured = self.settings.http.signing_secret
        key = configured.get_secret_value() if configured else await self.store.secret("signing_key")
        self.cursors = CursorCodec(key.encode())
        self.recording_storage = build_storage(self.settings, key)
        self.recordings = RecordingUploader(self.store, self.recording_storage, self.settings)
        self.webhooks.recording_url = self.recordings.recording_url_by_id
        attach = getattr(self.backend, "attach_recordings", None)
        if attach is not None:
            attach(self.recordings)
        # Read before this run's first heartbeat and before any new call exists.
        last_seen = await self.nodes.last_seen(self.node_id)
        orphans = await self.store.active(self.node_id)
        await self.recordings.resume()
        await self.backend.start(self.calls)
        await self.nodes.started(self.node_id, utcnow())
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        self._reconciling = asyncio.get_running_loop().create_task(self.reconcile(orphans, last_seen))
        self.webhooks.start()
        log.info("gateway started", extra={"node_id": self.node_id})

    async def _beat(self) -> None:
        interval = self.settings.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.nodes.beat(self.node_id, utcnow())
            except Exception as exc:  # the database may be away for a while; keep beating
                log.warning("heartbeat not stored", extra={"error": type(exc).__name__})

    async def reconcile(self, orphans: list[Call], last_seen: datetime | None) -> int:
        """Settle the calls a previous run of this node left live (crash, kill -9).

        Their media and agents died with that process, but the carrier may still hold the
        call up (and bill it): each leg is first ended on the wire (BYE, or CANCEL while it
        rang) from what was stored, then the call ends `failed` with cause
        `gateway_restart`, which also queues its final webhook. Its `ended_at` is the last
        moment the node was known to carry it (its heartbeat), not the restart time.
        """
        results = await asyncio.gather(*(self._settle_orphan(c, last_seen) for c in orphans))
        if self.recordings is not None and any(results):
            await self.recordings.resume()  # their recordings can be finished and uploaded now
        return sum(results)

    async def _settle_orphan(self, call: Call, last_seen: datetime | None) -> bool:
        token = call_id_var.set(call.id)
        try:
            if call.sip_leg is not None:
                try:
                    await self.backend.release(call)
                except Exception as exc:
                    log.warning("could not end the carrier leg", extra={"error": f"{type(exc).__name__}: {exc}"})
            moved = await self.store.transition(
                call.id,
                CallStatus.FAILED,
                utcnow(),
                ended_at=_last_carried(call, last_seen),
                hangup_cause=str(HangupCause.GATEWAY_RESTART),
                hangup_side=str(HangupSide.LOCAL),
                sip_leg=None,
            )
            if moved is None:
                return False
            metrics.call_ended(CallStatus.FAILED)
            log.warning("call left live by a previous run reconciled")
            return True
        finally:
            call_id_var.reset(token)

    async def drain(self, grace_seconds: float) -> None:
        """Stop taking calls, let live ones finish for `grace_seconds`, then end the rest gracefully."""
        self.draining = True
        live = getattr(self.backend, "live_calls", lambda: 0)
        log.info("draining", extra={"live_calls": live(), "grace_seconds": grace_seconds})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        # Polled: the live-call count changes in many places, and 5 Hz during shutdown costs nothing.
        while live() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        remaining = await self.store.active(self.node_id)
        if remaining:
            log.warning("ending calls still live after the drain timeout", extra={"count": len(remaining)})
            await asyncio.gather(
                *(self.backend.hangup(c.id, HangupCause.GATEWAY_SHUTDOWN) for c in remaining),
                return_exceptions=True,
            )
            end = loop.time() + 10
            while live() and loop.time() < end:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        # Give due webhooks one more pass; whatever is left stays durable in the outbox.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                while await self.webhooks.run_once():
                    pass

    async def stop(self) -> None:
        for task in (self._heartbeat, self._reconciling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self.backend.stop()
        await self.webhooks.stop()
        if self.recordings is not None:
            await self.recordings.stop()
        if self.recording_storage is not None:
            await self.recording_storage.close()
        await self.writes.close()
        await self.engine.dispose()

    def check_accepting(self) -> None:
        if self.draining:
            raise ServiceUnavailable("The gateway is shutting down and takes no new calls", retry_after=5)

    def call_view(self, call: Call) -> dict[str, Any]:
        url = self.recordings.recording_url(call) if self.recordings is not None else None
        return call_view(call, recording_url=url)

    async def ready(self) -> bool:
        if self.draining:
            return False
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True


def _last_carried(call: Call, last_seen: datetime | None) -> datetime:
    """When a call left by a dead process is known to have last been up: the node's last
    heartbeat, or the call's own latest moment if that came after it (never in the future)."""
    now = utcnow()
    stamps = [t for t in (call.created_at, call.ringing_at, call.answered_at) if t is not None]
    if last_seen is None:
        return now
    return min(now, max([last_seen, *stamps]))


def create_app(settings: Settings, backend: CallBackend | None = None) -> FastAPI:
    gateway = Gateway(settings, backend or SipDialer(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="Orbit Voice API",
        version="1.0.0",
        description="Make outbound calls, connect AI voice agents, manage active calls and retrieve recordings.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    envelope.install(app, max_body_bytes=settings.http.max_body_bytes)
    app.include_router(calls_router)
    app.include_router(recordings_router(lambda: gateway.recording_storage))
    app.include_router(metrics.metrics_router())

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["health"],
        summary="Readiness: database reachable and not draining",
        responses={503: {"model": Health, "description": "Not ready"}},
    )
    async def readyz() -> Any:
        from fastapi.responses import JSONResponse

        if await gateway.ready():
            return {"status": "ready"}
        return JSONResponse({"status": "draining" if gateway.draining else "unavailable"}, status_code=503)

    return app
