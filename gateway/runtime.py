"""The composition root: the gateway built in dependency order, each part given what it uses
through its constructor, and the FastAPI app that serves it.

    engine, group commit ─▶ CallStore (outbox) ─▶ signing key ─▶ recording storage ─▶ RecordingUploader
                                 │                                                      │
                                 ▼                                                      ▼
                         WebhookDispatcher ◀── recording URLs          CallRecorder ─▶ backend (SipDialer)
                                                                             │              │
                                                                             ▼              ▼
                                                                         CallService ◀──────┘
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.api import envelope
from gateway.api.auth import Keyring
from gateway.api.calls import router as calls_router
from gateway.api.cursor import CursorCodec
from gateway.api.health import health_router
from gateway.api.metrics import metrics_router
from gateway.api.recordings import recordings_router
from gateway.calls.backend import CallBackend
from gateway.calls.dialer import SipDialer
from gateway.calls.ending import end_by_us
from gateway.calls.progress import CallRecorder
from gateway.calls.service import CallService
from gateway.calls.views import call_view
from gateway.config import LimitsConfig, Settings
from gateway.errors import ServiceUnavailable
from gateway.logs import call_id_var
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallStatus, HangupCause
from gateway.recordings import RecordingUploader, build_storage
from gateway.store.calls import CallStore
from gateway.store.commit import GroupCommit, group_commit
from gateway.store.db import create_engine, migrate, session_factory
from gateway.store.nodes import NodeStore
from gateway.store.records import Call
from gateway.timeutil import utcnow
from gateway.webhooks.delivery import WebhookDispatcher
from media.storage import RecordingStorage

log = logging.getLogger("gateway")


@dataclass(frozen=True)
class BackendParts:
    """What a call backend is built from (the SIP dialer, or a test's scripted backend)."""

    settings: Settings
    progress: CallRecorder
    recordings: RecordingUploader
    metrics: GatewayMetrics


BackendFactory = Callable[[BackendParts], CallBackend]


def sip_dialer(parts: BackendParts) -> CallBackend:
    s = parts.settings
    return SipDialer(
        sip=s.sip,
        rtp=s.rtp,
        trunks=s.trunks,
        agents=s.agents,
        progress=parts.progress,
        recordings=parts.recordings,
        metrics=parts.metrics,
    )


class Gateway:
    """The running gateway; see `open_gateway`, which builds it."""

    def __init__(
        self,
        *,
        settings: Settings,
        node_id: str,
        metrics: GatewayMetrics,
        engine: AsyncEngine,
        writes: GroupCommit,
        store: CallStore,
        nodes: NodeStore,
        recording_storage: RecordingStorage,
        recordings: RecordingUploader,
        webhooks: WebhookDispatcher,
        recorder: CallRecorder,
        backend: CallBackend,
        calls: CallService,
        keyring: Keyring,
        cursors: CursorCodec,
    ) -> None:
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self.engine = engine
        self.writes = writes
        self.store = store
        self.nodes = nodes
        self.recording_storage = recording_storage
        self.recordings = recordings
        self.webhooks = webhooks
        self.recorder = recorder
        self.backend = backend
        self.calls = calls
        self.keyring = keyring
        self.cursors = cursors
        # What the API reads (gateway.api.deps.ApiContext).
        self.limits: LimitsConfig = settings.limits
        self.allow_private_webhooks = settings.webhooks.allow_private_targets
        self.draining = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._reconciling: asyncio.Task[int] | None = None

    async def start(self) -> None:
        # Read before this run's first heartbeat and before any new call exists.
        last_seen = await self.nodes.last_seen(self.node_id)
        orphans = await self.store.active(self.node_id)
        await self.recordings.resume()
        await self.backend.start()
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
        if any(results):
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
            outcome = end_by_us(HangupCause.GATEWAY_RESTART, answered=call.status is CallStatus.IN_PROGRESS)
            settled = await self.recorder.settle(
                call.id, outcome, ended_at=_last_carried(call, last_seen), sip_leg=None
            )
            if settled:
                log.warning("call left live by a previous run reconciled")
            return settled
        finally:
            call_id_var.reset(token)

    async def drain(self, grace_seconds: float) -> None:
        """Stop taking calls, let live ones finish for `grace_seconds`, then end the rest gracefully."""
        self.draining = True
        live = self.backend.live_calls
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
        await self.recordings.stop()
        await self.recording_storage.close()
        await self.writes.close()
        await self.engine.dispose()

    def check_accepting(self) -> None:
        if self.draining:
            raise ServiceUnavailable("The gateway is shutting down and takes no new calls", retry_after=5)

    def call_view(self, call: Call) -> dict[str, Any]:
        return call_view(call, recording_url=self.recordings.recording_url(call))

    async def ready(self) -> bool:
        if self.draining:
            return False
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True


async def open_gateway(
    settings: Settings, metrics: GatewayMetrics, backend: BackendFactory = sip_dialer
) -> Gateway:
    """Build the gateway in dependency order (the database is migrated first)."""
    # Stable across restarts, so a node reconciles the calls its previous run left behind.
    node_id = settings.node_id or socket.gethostname()
    engine = create_engine(settings.database.url)
    await migrate(engine)
    sessions = session_factory(engine)
    writes = group_commit(engine, sessions)
    accounts = {a.id: a for a in settings.accounts}

    def webhook_targets(call: Call) -> list[str]:
        targets = [call.webhook_url] if call.webhook_url else []
        account = accounts.get(call.account_id)
        if account is not None and account.webhook_url:
            targets.append(account.webhook_url)
        return targets

    # The store announces committed events; the webhook sender waits for them.
    events_committed = asyncio.Event()
    store = CallStore(sessions, writes, webhook_targets, render=call_view, on_event=events_committed.set)
    configured = settings.http.signing_secret
    key = configured.get_secret_value() if configured else await store.secret("signing_key")
    recording_storage = build_storage(settings.storage, settings.http.public_url, key)
    recordings = RecordingUploader(store, recording_storage, settings.storage.local_dir, metrics=metrics)
    webhooks = WebhookDispatcher(
        sessions,
        writes,
        settings.webhooks,
        settings.accounts,
        metrics=metrics,
        wake=events_committed,
        recording_url=recordings.recording_url_by_id,
    )
    recorder = CallRecorder(store, metrics)
    call_backend = backend(BackendParts(settings, recorder, recordings, metrics))
    calls = CallService(
        store,
        call_backend,
        recorder,
        agents=settings.agents,
        trunks=settings.trunks,
        node_id=node_id,
        metrics=metrics,
    )
    return Gateway(
        settings=settings,
        node_id=node_id,
        metrics=metrics,
        engine=engine,
        writes=writes,
        store=store,
        nodes=NodeStore(sessions, writes),
        recording_storage=recording_storage,
        recordings=recordings,
        webhooks=webhooks,
        recorder=recorder,
        backend=call_backend,
        calls=calls,
        keyring=Keyring(settings.accounts),
        cursors=CursorCodec(key.encode()),
    )


def create_app(settings: Settings, backend: BackendFactory = sip_dialer) -> FastAPI:
    """The HTTP app; the gateway is built and started by its lifespan (`app.state.gateway`)."""
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = await open_gateway(settings, metrics, backend)
        app.state.gateway = gateway
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
    envelope.install(app, max_body_bytes=settings.http.max_body_bytes)
    app.include_router(calls_router)
    app.include_router(recordings_router(lambda: _storage(app)))
    app.include_router(metrics_router(metrics))
    app.include_router(health_router())
    return app


def _storage(app: FastAPI) -> RecordingStorage | None:
    gateway: Gateway | None = getattr(app.state, "gateway", None)
    return gateway.recording_storage if gateway is not None else None


def _last_carried(call: Call, last_seen: datetime | None) -> datetime:
    """When a call left by a dead process is known to have last been up: the node's last
    heartbeat, or the call's own latest moment if that came after it (never in the future)."""
    now = utcnow()
    stamps = [t for t in (call.created_at, call.ringing_at, call.answered_at) if t is not None]
    if last_seen is None:
        return now
    return min(now, max([last_seen, *stamps]))
