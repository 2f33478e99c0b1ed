"""`GET /metrics`: the gateway's Prometheus series (text exposition format, no API key; not in
the OpenAPI document). Restrict who can reach it at the network level."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.metrics import CONTENT_TYPE, GatewayMetrics

__all__ = ["metrics_router"]


def metrics_router(metrics: GatewayMetrics) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    async def get_metrics() -> Response:
        return Response(content=metrics.render(), media_type=CONTENT_TYPE)

    router.add_api_route(
        "/metrics",
        get_metrics,
        methods=["GET"],
        include_in_schema=False,
        summary="Prometheus metrics (text exposition format)",
    )
    return router
