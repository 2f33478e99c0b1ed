"""SSRF guard for webhook targets: only public unicast addresses may receive deliveries."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

# Addresses that are not "the public internet": loopback, RFC 1918, link-local, CGNAT,
# multicast, documentation, benchmarking, reserved and the IPv6 equivalents.
_FORBIDDEN_V4 = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
]
_FORBIDDEN_V6 = [
    ipaddress.ip_network(n)
    for n in (
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "2001:db8::/32",
        "100::/64",
        "64:ff9b:1::/48",
    )
]


class WebhookTargetError(Exception):
    """The URL cannot be a webhook target; the message says why."""


def address_allowed(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return address_allowed(str(mapped))
        return not any(ip in n for n in _FORBIDDEN_V6)
    return not any(ip in n for n in _FORBIDDEN_V4)


def check_url_shape(url: str) -> tuple[str, int]:
    """The host and port of an acceptable http(s) URL, or WebhookTargetError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetError("must be an http or https URL")
    if not parts.hostname:
        raise WebhookTargetError("has no host")
    if parts.username or parts.password:
        raise WebhookTargetError("must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_target(url: str, *, allow_private: bool, resolve_timeout: float = 2.0) -> None:
    """Refuse URLs whose host is, or resolves to, a forbidden address.

    A host that does not resolve (yet) is accepted: delivery resolves and checks again.
    """
    host, port = check_url_shape(url)
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not address_allowed(str(literal)):
            raise WebhookTargetError("points to a private, loopback or reserved address")
        return
    if host.lower() in ("localhost",) or host.lower().endswith(".localhost"):
        raise WebhookTargetError("points to a private, loopback or reserved address")
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=resolve_timeout
        )
    except (OSError, TimeoutError):
        return
    for info in infos:
        if not address_allowed(str(info[4][0])):
            raise WebhookTargetError("resolves to a private, loopback or reserved address")
