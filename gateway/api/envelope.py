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
from gateway.errors import ApiError, BadRequest, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from gateway.ids import new_request_id
from gateway.jsonutil import dumps_bytes
from gateway.logs import request_id_var
from gateway.numbers import EXPECTED
from gateway.timeutil import iso, utcnow

log = logging.getLogger("gateway.api")


class StrictJSONResponse(JSONResponse):
    """JSON that is always valid: no NaN or Infinity, UTF-8 only (see `gateway.jsonutil`)."""

    def render(self, content: Any) -> bytes:
        return dumps_bytes(content)


def meta(request: Request, **extra: Any) -> dict[str, Any]:
    return {"request_id": request_id(request), "timestamp": iso(utcnow()), **extra}


def request_id(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else new_request_id()


def ok(request: Request, data: Any, status: int = 200, **meta_extra: Any) -> JSONResponse:
    return StrictJSONResponse({"data": data, "meta": meta(request, **meta_extra)}, status_code=status)


def error_response(request: Request, exc: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, "status": exc.status}
    if exc.details is not None:
        body["details"] = exc.details
    m = meta(request)
    # Set here too: a 500 is answered outside the request-id middleware.
    headers = {**exc.headers, "X-Request-Id": m["request_id"]}
    return StrictJSONResponse({"error": body, "meta": m}, status_code=exc.status, headers=headers)


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
_NO_ERROR: dict[str, Any] = {"loc": (), "msg": "invalid request", "type": "value_error"}


def _validation_to_api_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    err: dict[str, Any] = dict(errors[0]) if errors else _NO_ERROR
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        return BadRequest("The request body is not valid JSON", code="INVALID_JSON")
    if loc and loc[0] == "body":
        return _body_error(err, loc[1:])
    field = loc[-1] if loc else "body"
    message = str(err.get("msg", "invalid value"))
    if loc and loc[0] == "query" and field in _QUERY_FIELDS:
        return ValidationFailed(f"Invalid query parameter '{field}': {message}", field=field)
    return ValidationFailed(f"Invalid value for '{field}': {message}", field=field)


def _body_error(err: dict[str, Any], loc: list[str]) -> ApiError:
    """One field of a JSON body, in the Orbit codes clients rely on."""
    kind = err.get("type")
    if not loc:
        if kind == "missing":
            return BadRequest("The request body is empty: send a JSON object", code="INVALID_JSON")
        return ValidationFailed("The request body must be a JSON object", field="body")
    field = loc[0]
    raw = err.get("input")
    value = raw if isinstance(raw, str | int | bool) and len(str(raw)) <= 256 else None
    if kind == "missing":
        return ValidationFailed(f"The '{field}' field is required", field=field, code="MISSING_REQUIRED_FIELD")
    if field in ("to", "from"):
        why = str(err.get("msg")) if kind == "phone_number" else "it must be '+' then 2 to 15 digits"
        return ValidationFailed(
            f"The '{field}' field must be a valid E.164 phone number: {why[0].lower()}{why[1:]}",
            field=field,
            code="INVALID_PHONE_NUMBER",
            value=value,
            expected=EXPECTED,
        )
    if field == "webhook_url":
        return ValidationFailed(
            "The 'webhook_url' field must be an http or https URL", field=field, code="INVALID_WEBHOOK_URL"
        )
    return ValidationFailed(f"Invalid value for '{field}': {err.get('msg')}", field=field, value=value)


def _allowed_methods(request: Request) -> str:
    # Starlette names only the first route that matches the path; list every documented one.
    methods: set[str] = set()
    for template, ops in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            methods |= {m.upper() for m in ops}
    return ", ".join(sorted(methods))


class CatchAllMiddleware:
    """An unexpected error becomes a 500 in the envelope, and the connection stays usable.

    (Starlette's own last-resort handler answers, then re-raises, and the server closes a
    keep-alive connection without a word.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if started:
                raise  # half a response is out: only closing the connection is left
            response = error_response(
                Request(scope), ApiError("An internal error occurred", code="INTERNAL_ERROR", status=500)
            )
            await response(scope, receive, send)


class BodyLimitMiddleware:
    """Request bodies are read up to `max_bytes` and no further (413 in the envelope)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await error_response(Request(scope), PayloadTooLarge(limit))(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    # The last added is the outermost: request id, then catch-all, then the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
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
            err: ApiError = ApiError("No such resource", code="NOT_FOUND", status=404)
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


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    text = {
        400: "Malformed request (invalid JSON or cursor)",
        401: "Missing or invalid API key",
        404: "Not found",
        409: "State conflict",
        413: "Request body too large",
        415: "Request body is not JSON",
        422: "Validation error",
        429: "Rate limited",
        500: "Internal error",
        503: "Not accepting new calls (draining)",
    }
    return {s: {"model": ErrorEnvelope, "description": text[s]} for s in statuses}
