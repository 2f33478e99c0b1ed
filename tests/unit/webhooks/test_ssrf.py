from __future__ import annotations

import pytest

from gateway.webhooks.ssrf import WebhookTargetError, address_allowed, check_target

# (address, allowed): every address class the guard knows, both ways.
ADDRESSES = [
    # IPv4: public unicast, and the IANA special-purpose blocks that are not globally reachable.
    ("8.8.8.8", True), ("93.184.215.14", True), ("1.1.1.1", True),
    ("192.31.196.1", True),  # AS112: special-purpose but globally reachable
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.31.255.255", False), ("192.168.0.1", False),
    ("100.64.0.1", False), ("100.127.255.255", False), ("169.254.169.254", False), ("0.0.0.0", False),
    ("0.1.2.3", False), ("192.0.0.8", False), ("192.0.2.1", False), ("192.88.99.1", False),
    ("198.18.0.1", False), ("198.51.100.7", False), ("203.0.113.9", False),
    ("224.0.0.251", False), ("240.0.0.1", False), ("255.255.255.255", False),
    # IPv6 without an IPv4 inside: global unicast only, minus the special-purpose blocks.
    ("2606:4700::1111", True), ("2001:4860:4860::8888", True), ("2a00:1450:4001::200e", True),
    ("::", False), ("::1", False), ("fe80::1", False), ("fe80::1%eth0", False), ("fec0::1", False),
    ("fd00::1", False), ("fc00::1", False), ("ff02::1", False), ("ff0e::1", False),
    ("100::1", False),  # discard-only
    ("2001:db8::1", False), ("3fff::1", False),  # documentation
    ("2001:20::1", False),  # ORCHIDv2, an identifier rather than a locator
    ("2001:2::1", False), ("2001:1::1", False),  # the rest of the 2001::/23 special-purpose block
    ("5f00::1", False), ("4000::1", False), ("::1:0:0:1", False),  # reserved, outside 2000::/3
    ("::ffff:0:7f00:1", False),  # IPv4-translated (RFC 2765), in the reserved ::/8
    # IPv4-mapped: the IPv4 address is what a dual-stack socket connects to.
    ("::ffff:8.8.8.8", True), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("::ffff:169.254.169.254", False),
    # IPv4-compatible (deprecated, still routed by some stacks).
    ("::8.8.8.8", True), ("::127.0.0.1", False), ("::7f00:1", False), ("::169.254.169.254", False),
    ("::10.0.0.1", False), ("::2", False),
    # NAT64 well-known prefix 64:ff9b::/96: the last 32 bits.
    ("64:ff9b::808:808", True), ("64:ff9b::1.1.1.1", True), ("64:ff9b::7f00:1", False),
    ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::10.0.0.1", False), ("64:ff9b::c0a8:1", False),
    # Local-use NAT64 64:ff9b:1::/48: the embedded address depends on a prefix length the
    # address does not carry, so the whole block is refused, even where it reads as public.
    ("64:ff9b:1::808:808", False), ("64:ff9b:1:808:8:800::", False), ("64:ff9b:1:7f00:0:100::", False),
    # Teredo 2001::/32: server 65.54.227.120, client (obfuscated) as named.
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # client 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # client 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:5601:5601", False),  # client 169.254.169.254
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # client 192.0.2.45
    ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", False),  # server 127.0.0.1, client 8.8.8.8
    # 6to4 2002::/16: the 32 bits after the prefix.
    ("2002:0808:0808::", True), ("2002:808:808:1::1", True), ("2002:7f00:1::", False),
    ("2002:a9fe:a9fe::1", False), ("2002:c058:6301::", False), ("2002:a00:1::", False),
]


@pytest.mark.parametrize(("addr", "ok"), ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_address_classes(addr: str, ok: bool) -> None:
    assert address_allowed(addr) is ok


# Hosts that name loopback or metadata addresses without spelling them out the usual way.
REFUSED_AT_CREATION = [
    "http://[::127.0.0.1]/x",
    "http://[64:ff9b::7f00:1]/x",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x",
    "http://[::ffff:127.0.0.1]:8080/x",
    "http://[fe80::1%25eth0]/x",
    # IPv4 written in decimal, hex, octal or shortened: not literals to `ipaddress`, but the
    # resolver reads them as IPv4 (inet_aton) and the resolved address is what gets checked.
    "http://2130706433/x",
    "http://0x7f.1/x",
    "http://017700000001/x",
    "http://0x7f000001/x",
    "http://0177.0.0.1/x",
    "http://127.1/x",
    "http://0/x",
    "http://localhost/x",
    "http://LocalHost./x",
    "http://api.localhost/x",
]


@pytest.mark.parametrize("url", REFUSED_AT_CREATION)
async def test_disguised_private_hosts_refused_at_creation(url: str) -> None:
    with pytest.raises(WebhookTargetError):
        await check_target(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["https://[64:ff9b::808:808]/hooks", "https://[2002:808:808::1]/hooks", "https://[::ffff:8.8.8.8]/hooks"]
)
async def test_public_ipv4_inside_ipv6_accepted_at_creation(url: str) -> None:
    await check_target(url, allow_private=False)


async def test_unresolvable_host_is_accepted_at_creation() -> None:
    await check_target("https://hooks.invalid-tld-for-tests.invalid/x", allow_private=False, resolve_timeout=0.5)


async def test_private_allowed_by_switch() -> None:
    await check_target("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(WebhookTargetError):
        await check_target("http://127.0.0.1:9/x", allow_private=False)
