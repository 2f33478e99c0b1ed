"""Request dependencies: what the handlers use of the running gateway, and the authenticated account."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from gateway.api.auth import Keyring
from gateway.api.cursor import CursorCodec
from gateway.calls.service import CallService
from gateway.config import AccountConfig, LimitsConfig
from gateway.errors import Unauthorized
from gateway.store.records import Call


class ApiContext(Protocol):
    """The part of the gateway the API's handlers see (`gateway.runtime.Gateway` provides it)."""

    calls: CallService
    keyring: Keyring
    cursors: CursorCodec
    limits: LimitsConfig
    allow_private_webhooks: bool
    draining: bool

    def call_view(self, call: Call) -> dict[str, Any]: ...

    def check_accepting(self) -> None:
        """Raise ServiceUnavailable while the gateway takes no new calls (draining)."""
        ...

    async def ready(self) -> bool: ...


def get_gateway(request: Request) -> ApiContext:
    gw: ApiContext = request.app.state.gateway
    return gw


GatewayDep = Annotated[ApiContext, Depends(get_gateway)]


_API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", description="Your API key", auto_error=False)


def authenticate(request: Request, x_api_key: Annotated[str | None, Security(_API_KEY)] = None) -> AccountConfig:
    # Routes that read a body authenticate before reading it (JsonBodyRoute) and leave the account here.
    known: AccountConfig | None = getattr(request.state, "account", None)
    if known is not None:
        return known
    account = get_gateway(request).keyring.lookup(x_api_key)
    if account is None:
        # One answer for a missing and a wrong key, so the API reveals nothing about keys.
        raise Unauthorized("Missing or invalid API key: send it in the X-API-Key header")
    return account


AccountDep = Annotated[AccountConfig, Depends(authenticate)]
