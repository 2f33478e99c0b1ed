"""The `{data, meta}` envelope, request ids, and every error turned into the Orbit error envelope."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.schemas import ErrorEnvelope
from gateway.errors import ApiError, ServiceUnavailable
from gateway.ids import new_request_id
from gateway.logs import request_id_var
from gateway.timeutil import iso, utcnow

log = logging.getLogger("gateway.api")


def meta(request: Request, **extra: Any) -> dict[str, Any]:
    return {"request_id": request_id(request), "timestamp": iso(utcnow()), **extra}


def request_id(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else new_request_id()


def ok(request: Request, data: Any, status: int = 200, **meta_extra: Any) -> JSONResponse:
    return JSONResponse({"data": data, "meta": meta(request, **meta_extra)}, status_code=status)


def error_response(request: Request, exc: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, "status": exc.status}
    if exc.details is not None:
        body["details"] = exc.details
    m = meta(request)
    # Set here too: a 500 is answered outside the request-id middleware.
    headers = {**exc.headers, "X-Request-Id": m["request_id"]}
    return JSONResponse({"error": body, "meta": m}, status_code=exc.status, headers=headers)


class RequestIdMiddleware:
    """Gives every request an id, exposes it as `X-Request-Id` and to the logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


_QUERY_FIELDS = {"limit", "cursor", "status", "from", "to"}


def _validation_to_api_error(exc: RequestValidationError) -> ApiError:
    from gateway.errors import BadRequest, ValidationFailed

    err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": "value_error"}
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        return BadRequest("The request body is not valid JSON", code="INVALID_JSON")
    field = loc[-1] if loc else "body"
    message = str(err.get("msg", "invalid value"))
    if loc and loc[0] == "query" and field in _QUERY_FIELDS:
        return ValidationFailed(f"Invalid query parameter '{field}': {message}", field=field)
    return ValidationFailed(f"Invalid value for '{field}': {message}", field=field)


def _allowed_methods(request: Request) -> str:
    # Starlette names only the first route that matches the path; list every documented one.
    methods: set[str] = set()
    for template, ops in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            methods |= {m.upper() for m in ops}
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, _validation_to_api_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = ApiError("No such resource", code="NOT_FOUND", status=404)
        elif exc.status_code == 405:
            err = ApiError("Method not allowed on this resource", code="METHOD_NOT_ALLOWED", status=405)
        else:
            err = ApiError(str(exc.detail), code="HTTP_ERROR", status=exc.status_code)
        err.headers = dict(exc.headers or {})
        if exc.status_code == 405:
            err.headers["Allow"] = _allowed_methods(request)
        return error_response(request, err)

    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(sa_exc.OperationalError)
    async def _store_busy(request: Request, exc: Exception) -> JSONResponse:
        # No free database connection in time, or the database is locked or unreachable.
        log.warning("call store unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
        return error_response(
            request, ServiceUnavailable("The call store is busy; try again shortly", retry_after=1)
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(
            request, ApiError("An internal error occurred", code="INTERNAL_ERROR", status=500)
        )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    text = {
        400: "Malformed request (invalid JSON or cursor)",
        401: "Missing or invalid API key",
        404: "Not found",
        409: "State conflict",
        422: "Validation error",
        429: "Rate limited",
        500: "Internal error",
        503: "Not accepting new calls (draining)",
    }
    return {s: {"model": ErrorEnvelope, "description": text[s]} for s in statuses}
