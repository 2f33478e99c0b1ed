"""The running gateway: wires configuration, store, call service and backend into one app."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import text

from gateway.api import envelope
from gateway.api.auth import Keyring
from gateway.api.calls import router as calls_router
from gateway.api.cursor import CursorCodec
from gateway.api.schemas import CallCreate, Health
from gateway.calls.backend import CallBackend
from gateway.calls.dialer import SipDialer
from gateway.calls.model import Call
from gateway.calls.service import CallService
from gateway.calls.views import call_view
from gateway.config import Settings
from gateway.errors import ServiceUnavailable
from gateway.store.calls import CallStore
from gateway.store.db import create_engine, migrate, session_factory
from gateway.webhooks.delivery import WebhookDispatcher

log = logging.getLogger("gateway")

BackendFactory = Callable[[Settings], CallBackend]


class Gateway:
    """Everything a request handler needs, built once per process."""

    def __init__(self, settings: Settings, backend: CallBackend, node_id: str | None = None) -> None:
        self.settings = settings
        self.node_id = node_id or f"node_{secrets.token_hex(4)}"
        self.engine = create_engine(settings.database.url)
        self.sessions = session_factory(self.engine)
        self.store = CallStore(self.sessions, self._webhook_targets)
        self.webhooks = WebhookDispatcher(self.sessions, settings)
        self.store.on_event = self.webhooks.wake
        self.backend = backend
        self.calls = CallService(settings, self.store, backend, self.node_id)
        self.keyring = Keyring(settings)
        self.cursors = CursorCodec(b"")
        self.draining = False

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
        await self.backend.start(self.calls)
        self.webhooks.start()
        log.info("gateway started", extra={"node_id": self.node_id})

    async def stop(self) -> None:
        await self.backend.stop()
        await self.webhooks.stop()
        await self.engine.dispose()

    def check_accepting(self) -> None:
        if self.draining:
            raise ServiceUnavailable("The gateway is shutting down and takes no new calls", retry_after=5)

    def call_view(self, call: Call) -> dict[str, Any]:
        return call_view(call, recording_url=None)

    async def ready(self) -> bool:
        if self.draining:
            return False
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True


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
    envelope.install(app)
    app.include_router(calls_router)

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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            body = CallCreate.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            components.update(body.pop("$defs", {}))
            components["CallCreate"] = body
            schema["components"]["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
