"""Request dependencies: the running gateway and the authenticated account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from gateway.config import AccountConfig
from gateway.errors import Unauthorized

if TYPE_CHECKING:
    from gateway.runtime import Gateway


def get_gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


GatewayDep = Annotated["Gateway", Depends(get_gateway)]


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
