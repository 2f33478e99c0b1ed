"""One of each typed error the SIP core raises, with the status a request that caused it gets."""

from __future__ import annotations

from collections.abc import Callable

from gateway.sip.dialog import DialogError
from gateway.sip.digest import AuthFailed, AuthFailureReason
from gateway.sip.digest_challenge import (
    DigestError,
    DigestParseError,
    UnsupportedDigestAlgorithm,
    UnsupportedQop,
)
from gateway.sip.errors import SipHeaderError, TransactionUsageError
from gateway.sip.offer_answer import SdpNegotiationError
from gateway.sip.sdp import SdpError, SdpParseError

# (make the error, the status it carries); ids name the error class.
TYPED_ERRORS: list[tuple[Callable[[], Exception], int]] = [
    (lambda: SdpParseError("not an SDP line", 3), 400),
    (lambda: SdpNegotiationError("offer contains none of our codecs", warning_code=305), 488),
    (lambda: SdpError("cannot offer codec 'OPUS'"), 500),
    (lambda: DigestParseError("unterminated quoted string"), 400),
    (lambda: UnsupportedDigestAlgorithm("SHA-999"), 400),
    (lambda: UnsupportedQop(("auth-conf",)), 400),
    (lambda: AuthFailed(AuthFailureReason.CREDENTIALS_REJECTED, "realm 'c' rejected the credentials"), 403),
    (lambda: DigestError("nonce count 0 out of range"), 500),
    (lambda: DialogError("response cannot create a dialog"), 400),
    (lambda: SipHeaderError("invalid Session-Expires value 'x'", header="Session-Expires"), 400),
    (lambda: TransactionUsageError("driven wrongly"), 500),
    (lambda: ValueError("input the code could not take"), 400),
]
TYPED_ERROR_IDS = [type(make()).__name__ for make, _ in TYPED_ERRORS]
