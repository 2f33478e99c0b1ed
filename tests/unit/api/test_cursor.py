"""List cursors: signed, bound to the account and to the filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.api.cursor import CursorCodec
from gateway.errors import BadRequest


def test_cursor_round_trip_and_binding() -> None:
    codec = CursorCodec(b"k")
    after = (datetime(2026, 3, 8, 12, 0, 0, 5, tzinfo=UTC), "call_x")
    c = codec.encode("acct", "f", after)
    assert codec.decode("acct", "f", c) == after
    for account, filters, key in (("other", "f", b"k"), ("acct", "g", b"k"), ("acct", "f", b"other-key")):
        with pytest.raises(BadRequest):
            CursorCodec(key).decode(account, filters, c)
