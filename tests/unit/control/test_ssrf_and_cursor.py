from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.api.cursor import CursorCodec
from gateway.errors import BadRequest
from gateway.webhooks.ssrf import WebhookTargetError, address_allowed, check_target


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("8.8.8.8", True), ("93.184.215.14", True), ("2606:4700::1111", True),
        ("127.0.0.1", False), ("10.0.0.1", False), ("172.31.255.255", False), ("192.168.0.1", False),
        ("100.64.0.1", False), ("100.127.255.255", False), ("169.254.169.254", False), ("0.0.0.0", False),
        ("224.0.0.251", False), ("240.0.0.1", False), ("255.255.255.255", False), ("::1", False),
        ("fe80::1", False), ("fd00::1", False), ("ff02::1", False), ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False), ("198.18.0.1", False),
    ],
)
def test_address_classes(addr: str, ok: bool) -> None:
    assert address_allowed(addr) is ok


async def test_unresolvable_host_is_accepted_at_creation() -> None:
    await check_target("https://hooks.invalid-tld-for-tests.invalid/x", allow_private=False, resolve_timeout=0.5)


async def test_private_allowed_by_switch() -> None:
    await check_target("http://127.0.0.1:9/x", allow_private=True)
    with pytest.raises(WebhookTargetError):
        await check_target("http://127.0.0.1:9/x", allow_private=False)


def test_cursor_round_trip_and_binding() -> None:
    codec = CursorCodec(b"k")
    after = (datetime(2026, 3, 8, 12, 0, 0, 5, tzinfo=UTC), "call_x")
    c = codec.encode("acct", "f", after)
    assert codec.decode("acct", "f", c) == after
    for account, filters, key in (("other", "f", b"k"), ("acct", "g", b"k"), ("acct", "f", b"other-key")):
        with pytest.raises(BadRequest):
            CursorCodec(key).decode(account, filters, c)
