"""SSRF guard for webhook targets: only public unicast addresses may receive deliveries."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

# IPv4: the blocks of the IANA special-purpose registry that are not globally reachable, and
# multicast. (AS112 and AMT, 192.31.196.0/24, 192.52.193.0/24 and 192.175.48.0/24, are
# special-purpose but globally reachable: allowed.)
_FORBIDDEN_V4: tuple[IPv4Network, ...] = tuple(
    IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, where cloud metadata services live
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
    )
)

# IPv6 that is not global unicast. An address carrying an IPv4 address (see _embedded_ipv4)
# is judged by that address instead, so ::ffff:0:0/96, ::/96, 64:ff9b::/96, 2001::/32 and
# 2002::/16 do not appear here. Outside 2000::/3, the only space IANA allocates for global
# unicast, everything is refused anyway (the reserved ::/8, 100::/8, 4000::/3..., the SRv6
# SID block 5f00::/16); the well-known blocks out there are named for the reader.
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_FORBIDDEN_V6: tuple[IPv6Network, ...] = tuple(
    IPv6Network(n)
    for n in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        # Local-use IPv4/IPv6 translation (RFC 8215). Its operator picks any RFC 6052 prefix
        # length from /48 to /96 inside it, and the address does not say which: the same bits
        # read as /48 or /96 give different IPv4 addresses (64:ff9b:1:7f00:0:100:: is
        # 127.0.0.1 as /48, 0.0.0.0 as /96). With no unambiguous reading, refuse the block.
        "64:ff9b:1::/48",
        "100::/64",  # discard-only (RFC 6666)
        # IETF protocol assignments: benchmarking, ORCHIDv2 (identifiers, not locators), the
        # PCP/TURN/AMT anycast services... none a webhook receiver. Teredo, 2001::/32 within
        # it, is judged by its embedded addresses before this table is consulted.
        "2001::/23",
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local, deprecated (RFC 3879); never global
        "ff00::/8",  # multicast
    )
)

_IPV4_COMPATIBLE = IPv6Network("::/96")  # deprecated (RFC 4291 2.5.5.1), still routed by some stacks
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits


class WebhookTargetError(Exception):
    """The URL cannot be a webhook target; the message says why."""


def _embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses that a connection to `ip` may end up at: through a dual-stack socket
    (IPv4-mapped, IPv4-compatible), a NAT64 translator, a Teredo server and relay, or a 6to4
    relay. Empty when `ip` carries none."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are not IPv4-compatible addresses
        return (IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip in _NAT64_WELL_KNOWN:
        return (IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.teredo is not None:
        return ip.teredo  # (server, client), the client already de-obfuscated
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    return ()


def _ipv4_allowed(ip: IPv4Address) -> bool:
    return not any(ip in n for n in _FORBIDDEN_V4)


def address_allowed(addr: str) -> bool:
    """Whether `addr` (an IP address, possibly with a %scope) may receive webhooks."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, IPv4Address):
        return _ipv4_allowed(ip)
    embedded = _embedded_ipv4(ip)
    if embedded:
        return all(_ipv4_allowed(v4) for v4 in embedded)
    return ip in _GLOBAL_UNICAST_V6 and not any(ip in n for n in _FORBIDDEN_V6)


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
    name = host.lower().rstrip(".")  # "localhost." is the same name, fully qualified
    if name == "localhost" or name.endswith(".localhost"):
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
