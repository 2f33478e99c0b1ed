"""DTMF in SIP INFO bodies (gateway.sip.dtmf_info)."""

from __future__ import annotations

import pytest

from gateway.sip.dtmf_info import DtmfInfo, parse_dtmf_info


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", DtmfInfo("5", 160)),
        ("Application/DTMF-Relay; charset=x", b"Duration=100\nSignal=#", DtmfInfo("#", 100)),
        ("application/dtmf-relay", b"Signal= a \r\n", DtmfInfo("A", None)),
        ("application/dtmf-relay", b"Signal=10\r\nDuration=99999999\r\n", DtmfInfo("*", None)),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=120000\r\n", DtmfInfo("#", 60000)),
        ("application/dtmf-relay", b"Signal=15", DtmfInfo("D", None)),
        ("application/dtmf", b"7", DtmfInfo("7", None)),
        ("application/dtmf", b" 11 \r\n", DtmfInfo("#", None)),
        ("application/dtmf-relay", b"Signal=16\r\n", None),  # flash: not a key
        ("application/dtmf-relay", b"Signal=x\r\n", None),
        ("application/dtmf-relay", b"Duration=100\r\n", None),
        ("application/dtmf-relay", b"garbage", None),
        ("application/dtmf", b"55", None),
        ("application/dtmf", b"\xff", None),
        ("application/xml", b"Signal=5", None),
        (None, b"Signal=5", None),
    ],
)
def test_parse_dtmf_info(content_type: str | None, body: bytes, expected: DtmfInfo | None) -> None:
    assert parse_dtmf_info(content_type, body) == expected
