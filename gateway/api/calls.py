"""`/v1/voice/calls`: place, list, read and hang up calls."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.routing import APIRoute

from gateway.api.body import parse_json_object
from gateway.api.deps import AccountDep, GatewayDep, authenticate, get_gateway
from gateway.api.envelope import error_responses, ok
from gateway.api.schemas import CallCreate, CallEnvelope, CallListEnvelope, HangupEnvelope
from gateway.calls.service import CallRequest
from gateway.calls.views import call_view, hangup_view
from gateway.errors import UnsupportedMediaType, ValidationFailed
from gateway.jsonutil import dumps_bytes
from gateway.numbers import EXPECTED, InvalidNumber, parse_e164
from gateway.outcome import CallStatus
from gateway.store.records import ListFilters
from gateway.webhooks.ssrf import WebhookTargetError, check_target


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            limits = get_gateway(self).limits
            self._json = parse_json_object(await self.body(), max_depth=limits.metadata_max_depth)
        return self._json


class JsonBodyRoute(APIRoute):
    """A route that authenticates first (an unknown client learns nothing, not even that its
    body is malformed), then reads its JSON body strictly (`gateway.api.body`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # A body without Content-Type is JSON too (clients that send none still work).
        kwargs["strict_content_type"] = False
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            request.state.account = authenticate(request, request.headers.get("x-api-key"))
            content_type = request.headers.get("content-type")
            if takes_body and content_type is not None and not _is_json(content_type):
                raise UnsupportedMediaType(
                    "The request body must be JSON: send it with 'Content-Type: application/json'",
                    details={"content_type": content_type[:100]},
                )
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


router = APIRouter(prefix="/v1/voice", tags=["calls"], route_class=JsonBodyRoute)


async def _call_request(body: CallCreate, gw: GatewayDep) -> CallRequest:
    """The checks that need the operator's settings; the shapes were checked by `CallCreate`."""
    limits = gw.limits
    max_duration = body.max_duration if "max_duration" in body.model_fields_set else limits.default_max_duration
    if max_duration > limits.max_duration_ceiling:
        raise ValidationFailed(
            f"'max_duration' must be between 1 and {limits.max_duration_ceiling} seconds",
            field="max_duration",
            value=max_duration,
        )
    size = len(dumps_bytes(body.metadata))
    if size > limits.metadata_max_bytes:
        raise ValidationFailed(
            f"'metadata' is {size} bytes as JSON; the limit is {limits.metadata_max_bytes}",
            field="metadata",
            code="METADATA_TOO_LARGE",
        )
    if body.webhook_url is not None:
        try:
            await check_target(body.webhook_url, allow_private=gw.allow_private_webhooks)
        except WebhookTargetError as exc:
            raise ValidationFailed(
                f"The 'webhook_url' {exc}", field="webhook_url", code="INVALID_WEBHOOK_URL"
            ) from None
    return CallRequest(
        to=body.to,
        from_=body.from_,
        agent_id=body.agent_id,
        webhook_url=body.webhook_url,
        record=body.record,
        max_duration=max_duration,
        metadata=body.metadata,
    )


@router.post(
    "/calls",
    status_code=201,
    response_model=CallEnvelope,
    summary="Initiate Call",
    description="Start a new outbound call, optionally handled by an AI voice agent.",
    responses=error_responses(400, 401, 413, 415, 422, 429, 500, 503),
)
async def create_call(request: Request, body: CallCreate, account: AccountDep, gw: GatewayDep) -> Response:
    gw.check_accepting()
    req = await _call_request(body, gw)
    call = await gw.calls.create(account, req)
    return ok(request, gw.call_view(call), status=201)


def _number_filter(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    # An unencoded '+' in a query string arrives as a space.
    if value.startswith(" ") and value[1:].isdigit():
        value = "+" + value[1:]
    try:
        return parse_e164(value)
    except InvalidNumber as exc:
        raise ValidationFailed(
            f"The '{name}' filter must be an E.164 phone number (encode '+' as %2B): the number {exc.reason}",
            field=name,
            code="INVALID_PHONE_NUMBER",
            value=value,
            expected=EXPECTED,
        ) from None


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
) -> Response:
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
async def get_call(request: Request, call_id: str, account: AccountDep, gw: GatewayDep) -> Response:
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
async def hangup_call(request: Request, call_id: str, account: AccountDep, gw: GatewayDep) -> Response:
    call = await gw.calls.hangup(account.id, call_id)
    return ok(request, hangup_view(call))


__all__ = ["call_view", "router"]
