"""The composition root: the gateway built in dependency order, each part given what it uses
through its constructor, and the FastAPI app that serves it.

    engine, group commit ─▶ CallStore (outbox) ─▶ signing key ─▶ recording storage ─▶ RecordingUploader
                                 │                                                      │
                                 ▼                                                      ▼
                         WebhookDispatcher ◀── recording URLs          CallRecorder ─▶ backend (SipDialer)
                                                                             │              │
                                                                             ▼              ▼
                                                                         CallService ◀──────┘
                                                                             ▲
    NodeLease, Takeover (lost nodes' calls), ControlChannel (Peers: requests to a call's node) ─┘
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
from gateway.calls.progress import CallRecorder
from gateway.calls.service import CallService
from gateway.calls.views import call_view
from gateway.cluster.control import ControlChannel
from gateway.cluster.lease import NodeAddresses, NodeLease
from gateway.cluster.takeover import Takeover
from gateway.config import LimitsConfig, Settings
from gateway.errors import ServiceUnavailable
from gateway.metrics import GatewayMetrics
from gateway.outcome import HangupCause
from gateway.recordings import RecordingUploader, build_storage
from gateway.store.calls import CallStore
from gateway.store.commands import CommandStore
from gateway.store.commit import GroupCommit, group_commit
from gateway.store.db import create_engine, migrate, session_factory
from gateway.store.nodes import NodeStore
from gateway.store.notify import PgNotifier, Silent
from gateway.store.records import Call
from gateway.store.slots import LocalSlots, SharedSlots, TrunkSlots
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
    slots: TrunkSlots


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
        slots=parts.slots,
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
        lease: NodeLease,
        takeover: Takeover,
        control: ControlChannel,
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
        self.lease = lease
        self.takeover = takeover
        self.control = control
        # What the API reads (gateway.api.deps.ApiContext).
        self.limits: LimitsConfig = settings.limits
        self.allow_private_webhooks = settings.webhooks.allow_private_targets
        self.draining = False
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        # Read before this run registers and before any new call exists: what its previous
        # run left live, and when that run was last known to be carrying it.
        previous = await self.lease.open()
        orphans = await self.store.active(self.node_id)
        await self.recordings.resume()
        await self.backend.start()
        await self.control.start()
        loop = asyncio.get_running_loop()
        last_seen = previous.renewed_at if previous is not None else None
        for job in (
            self.lease.run(),
            self.takeover.run(),
            self.control.run(),
            self.takeover.settle(orphans, HangupCause.GATEWAY_RESTART, last_seen),
        ):
            self._tasks.append(loop.create_task(job))
        self.webhooks.start()
        log.info("gateway started", extra={"node_id": self.node_id})

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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.control.stop()
        await self.backend.stop()
        with contextlib.suppress(Exception):
            await self.lease.close()
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
    shared = engine.dialect.name == "postgresql"  # several nodes may share it
    slots: TrunkSlots = SharedSlots(writes) if shared else LocalSlots()
    call_backend = backend(BackendParts(settings, recorder, recordings, metrics, slots))
    nodes = NodeStore(sessions, writes)
    sip = settings.sip
    lease = NodeLease(
        nodes,
        store,
        node_id,
        settings.cluster,
        NodeAddresses(
            version=_version(), http_url=settings.http.public_url, sip_address=f"{sip.public_host or sip.host}:{sip.port}"
        ),
        metrics,
        single_node=not shared,
    )
    takeover = Takeover(
        node_id=node_id,
        nodes=nodes,
        store=store,
        recorder=recorder,
        backend=call_backend,
        recordings=recordings,
        config=settings.cluster,
    )
    control = ControlChannel(
        node_id=node_id,
        commands=CommandStore(sessions, writes),
        notifier=PgNotifier(settings.database.url) if shared else Silent(),
        nodes=nodes,
        store=store,
        backend=call_backend,
        recorder=recorder,
        takeover=takeover,
        config=settings.cluster,
    )
    calls = CallService(
        store,
        call_backend,
        recorder,
        agents=settings.agents,
        trunks=settings.trunks,
        node_id=node_id,
        metrics=metrics,
        peers=control,
    )
    return Gateway(
        settings=settings,
        node_id=node_id,
        metrics=metrics,
        engine=engine,
        writes=writes,
        store=store,
        nodes=nodes,
        recording_storage=recording_storage,
        recordings=recordings,
        webhooks=webhooks,
        recorder=recorder,
        backend=call_backend,
        calls=calls,
        keyring=Keyring(settings.accounts),
        cursors=CursorCodec(key.encode()),
        lease=lease,
        takeover=takeover,
        control=control,
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


def _version() -> str:
    try:
        return importlib.metadata.version("orbit-gateway")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
