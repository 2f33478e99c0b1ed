"""The SIP core's typed errors and the status each one is answered with (gateway.sip.errors)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.sip.errors import (
    SipContentLengthError,
    SipError,
    SipHeaderError,
    SipMessageTooLargeError,
    SipVersionError,
    answer_status,
)
from tests.support.sip_errors import TYPED_ERROR_IDS, TYPED_ERRORS


@pytest.mark.parametrize(("make_error", "status"), TYPED_ERRORS, ids=TYPED_ERROR_IDS)
def test_every_typed_error_carries_its_status(make_error: Callable[[], Exception], status: int) -> None:
    error = make_error()
    assert isinstance(error, SipError | ValueError)
    if isinstance(error, SipError):
        assert error.status == status
    assert answer_status(error) == status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SipHeaderError("bad Via", header="Via"), 400),
        (SipVersionError("unsupported SIP version 'SIP/3.0'"), 505),
        (SipMessageTooLargeError("message of 70000 octets exceeds 65536"), 513),
        (SipContentLengthError("missing Content-Length"), 400),
        (SipHeaderError("CSeq too large", status=500), 500),
    ],
)
def test_parse_errors_carry_theirs(error: SipError, status: int) -> None:
    assert answer_status(error) == error.status == status
