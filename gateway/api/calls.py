"""`/v1/voice/calls`: place, list, read and hang up calls."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from gateway.api.deps import AccountDep, GatewayDep
from gateway.api.envelope import error_responses, ok
from gateway.api.schemas import CallCreate, CallEnvelope, CallListEnvelope, HangupEnvelope
from gateway.calls.model import ListFilters
from gateway.calls.service import CallRequest
from gateway.calls.status import CallStatus
from gateway.calls.views import call_view, hangup_view
from gateway.config import E164_RE
from gateway.errors import ApiError, BadRequest, ValidationFailed
from gateway.webhooks.ssrf import WebhookTargetError, check_target

router = APIRouter(prefix="/v1/voice", tags=["calls"])

_E164_EXPECTED = "E.164 format e.g. +14155552671"


def _body_error(exc: ValidationError) -> ApiError:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "body"
    value = err.get("input") if isinstance(err.get("input"), str | int | bool) else None
    if err["type"] == "missing":
        return ValidationFailed(
            f"The '{field}' field is required", field=field, code="MISSING_REQUIRED_FIELD"
        )
    if field in ("to", "from"):
        return ValidationFailed(
            f"The '{field}' field must be a valid E.164 phone number",
            field=field,
            code="INVALID_PHONE_NUMBER",
            value=value,
            expected=_E164_EXPECTED,
        )
    if field == "webhook_url":
        return ValidationFailed(
            "The 'webhook_url' field must be an http or https URL", field=field, code="INVALID_WEBHOOK_URL"
        )
    msg = err["msg"]
    return ValidationFailed(f"Invalid value for '{field}': {msg}", field=field, value=value)


async def _parse_create(request: Request, gw: GatewayDep) -> CallRequest:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The request body is not valid JSON", code="INVALID_JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object", field="body")
    for key in ("from", "agent_id", "webhook_url"):
        if body.get(key) is None:
            body.pop(key, None)  # null means "not given"
    try:
        parsed = CallCreate.model_validate(body)
    except ValidationError as exc:
        raise _body_error(exc) from None
    limits = gw.settings.limits
    if "max_duration" not in body:
        parsed.max_duration = limits.default_max_duration
    if parsed.max_duration > limits.max_duration_ceiling:
        raise ValidationFailed(
            f"'max_duration' must be between 1 and {limits.max_duration_ceiling} seconds",
            field="max_duration",
            value=parsed.max_duration,
        )
    size = len(json.dumps(parsed.metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limits.metadata_max_bytes:
        raise ValidationFailed(
            f"'metadata' is {size} bytes as JSON; the limit is {limits.metadata_max_bytes}",
            field="metadata",
            code="METADATA_TOO_LARGE",
        )
    if parsed.webhook_url is not None:
        try:
            await check_target(parsed.webhook_url, allow_private=gw.settings.webhooks.allow_private_targets)
        except WebhookTargetError as exc:
            raise ValidationFailed(
                f"The 'webhook_url' {exc}", field="webhook_url", code="INVALID_WEBHOOK_URL"
            ) from None
    return CallRequest(
        to=parsed.to,
        from_=parsed.from_,
        agent_id=parsed.agent_id,
        webhook_url=parsed.webhook_url,
        record=parsed.record,
        max_duration=parsed.max_duration,
        metadata=parsed.metadata,
    )


_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CallCreate"}}},
    }
}


@router.post(
    "/calls",
    status_code=201,
    response_model=CallEnvelope,
    summary="Initiate Call",
    description="Start a new outbound call, optionally handled by an AI voice agent.",
    openapi_extra=_CREATE_BODY,
    responses=error_responses(400, 401, 422, 429, 500, 503),
)
async def create_call(request: Request, account: AccountDep, gw: GatewayDep) -> JSONResponse:
    gw.check_accepting()
    req = await _parse_create(request, gw)
    call = await gw.calls.create(account, req)
    return ok(request, gw.call_view(call), status=201)


def _number_filter(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    # An unencoded '+' in a query string arrives as a space.
    if value.startswith(" ") and value[1:].isdigit():
        value = "+" + value[1:]
    if not E164_RE.fullmatch(value):
        raise ValidationFailed(
            f"The '{name}' filter must be an E.164 phone number (encode '+' as %2B)",
            field=name,
            code="INVALID_PHONE_NUMBER",
            value=value,
            expected=_E164_EXPECTED,
        )
    return value


@router.get(
    "/calls",
    response_model=CallListEnvelope,
    summary="List Calls",
    description="Call logs, newest first, with cursor-based pagination.",
    responses=error_responses(400, 401, 422, 500),
)
async def list_calls(
    request: Request,
    account: AccountDep,
    gw: GatewayDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Number of results per page (max 100)")] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="Cursor from the previous page")] = None,
    status: Annotated[CallStatus | None, Query(description="Only calls with this status")] = None,
    from_: Annotated[
        str | None, Query(alias="from", max_length=32, description="Only calls from this number")
    ] = None,
    to: Annotated[str | None, Query(max_length=32, description="Only calls to this number")] = None,
) -> JSONResponse:
    filters = ListFilters(status=status, from_=_number_filter("from", from_), to=_number_filter("to", to))
    after = gw.cursors.decode(account.id, filters.fingerprint(), cursor) if cursor else None
    page = await gw.calls.page(account.id, filters, after, limit)
    next_cursor = gw.cursors.encode(account.id, filters.fingerprint(), page.after) if page.after else None
    return ok(
        request,
        [gw.call_view(c) for c in page.calls],
        pagination={"cursor": next_cursor, "has_more": page.has_more, "total": page.total},
    )


@router.get(
    "/calls/{call_id}",
    response_model=CallEnvelope,
    summary="Get Call",
    description="A call's status, duration, recording URL and agent interaction summary.",
    responses=error_responses(401, 404, 422, 500),
)
async def get_call(request: Request, call_id: str, account: AccountDep, gw: GatewayDep) -> JSONResponse:
    call = await gw.calls.get(account.id, call_id)
    return ok(request, gw.call_view(call))


@router.post(
    "/calls/{call_id}/hangup",
    response_model=HangupEnvelope,
    summary="Hang Up Call",
    description=(
        "Terminate an active call. A connected AI agent receives a graceful stop first; "
        "an answered call ends with BYE, a ringing one is cancelled."
    ),
    responses=error_responses(401, 404, 409, 422, 500),
)
async def hangup_call(request: Request, call_id: str, account: AccountDep, gw: GatewayDep) -> JSONResponse:
    call = await gw.calls.hangup(account.id, call_id)
    return ok(request, hangup_view(call))


__all__ = ["call_view", "router"]
