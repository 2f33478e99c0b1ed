"""`GET /healthz` (the process runs) and `GET /readyz` (the database answers and the gateway takes calls)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import get_gateway
from gateway.api.schemas import Health


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Health,
        summary="Readiness: database reachable and not draining",
        responses={503: {"model": Health, "description": "Not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        gateway = get_gateway(request)
        if await gateway.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "draining" if gateway.draining else "unavailable"}, status_code=503)

    return router
