"""Typed errors raised by the SIP core, and the status each one is answered with.

Every error raised by ``gateway.sip`` is a ``SipError``. ``status`` is the response code
a request that caused the error is answered with; the user agent (for a request outside
a call) and the call (for a request in its dialog) send it, once, instead of deciding
themselves. Hierarchy, with the module that defines each branch::

    SipError (status 400 unless a subclass says otherwise)
    +-- SipParseError(status=400, reason=..., header=None)   bad bytes on the wire
    |   +-- SipStartLineError          malformed request/status line
    |   +-- SipVersionError            SIP version other than 2.0 (status 505)
    |   +-- SipHeaderError             malformed or missing header (``header`` names it)
    |   +-- SipUriError                malformed URI
    |   +-- SipFramingError            stream framing failure: close the connection (``head``:
    |       |                          the header section it broke on, when one was read)
    |       +-- SipContentLengthError  missing, duplicated or invalid Content-Length
    |       +-- SipMessageTooLargeError  message exceeds the configured limit (status 513)
    +-- TransactionUsageError          API misuse of a transaction object (a bug in the caller; 500)
    +-- DialogError (dialog)           a message cannot create or address a dialog (400)
    +-- SnapshotError (snapshot)       a stored LegSnapshot cannot be read back (400)
    +-- UaUsageError (ua_events)       the user agent was asked for something it cannot do (400)
    +-- SdpError (sdp)                 SDP we cannot use; as such a local misuse (500)
    |   +-- SdpParseError              the body is not SDP (400)
    |   +-- SdpNegotiationError (offer_answer)  no audio in common (488, with a Warning code)
    +-- DigestError (digest_challenge) a challenge we cannot answer; as such a misuse (500)
        +-- DigestParseError           a malformed challenge (400)
        +-- UnsupportedDigestAlgorithm an algorithm we cannot compute (400)
        +-- UnsupportedQop             no qop we can use (400)
        +-- AuthFailed (digest)        credentials will not help: stop retrying (403)

``status`` 400 Bad Request, 403 Forbidden, 488 Not Acceptable Here, 500 Server Internal
Error, 505 Version Not Supported, 513 Message Too Large. ``SipParseError.status`` and
``.reason`` are suitable for a stateless error response (RFC 3261 8.2.2, 21.4.1) when the
offending message was a request and enough of it was readable. ``answer_status(error)``
gives the status for an error met while handling a request: its own, 400 for a bare
``ValueError`` (input the code below could not take).

Not here on purpose: ``CallPhaseError`` (``call_state``) marks a bug in a call, not
something a peer did, so it is no ``SipError``; the user agent counts it as an internal
error.
"""

from __future__ import annotations

__all__ = [
    "SipContentLengthError",
    "SipError",
    "SipFramingError",
    "SipHeaderError",
    "SipMessageTooLargeError",
    "SipParseError",
    "SipStartLineError",
    "SipUriError",
    "SipVersionError",
    "TransactionUsageError",
    "answer_status",
]


class SipError(Exception):
    """Base class of every error raised by ``gateway.sip``.

    ``status`` is the SIP status a request that caused the error is answered with.
    """

    status: int = 400


class SipParseError(SipError):
    """Input could not be understood as SIP.

    ``status`` is the response code a UAS should answer with (400 unless a
    subclass says otherwise), ``reason`` a short human-readable explanation and
    ``header`` the canonical name of the header at fault, when there is one.
    """

    default_status = 400

    def __init__(self, reason: str, *, status: int | None = None, header: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = self.default_status if status is None else status
        self.header = header

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, reason={self.reason!r}, header={self.header!r})"


class SipStartLineError(SipParseError):
    """The request line or status line is malformed."""


class SipVersionError(SipParseError):
    """The message uses a SIP version other than SIP/2.0."""

    default_status = 505


class SipHeaderError(SipParseError):
    """A header is malformed, duplicated where it must be single, or missing."""


class SipUriError(SipParseError):
    """A SIP, SIPS, TEL or generic URI is malformed."""


class SipFramingError(SipParseError):
    """A byte stream cannot be split into messages; the connection must be closed.

    ``head`` holds the header section of the message the stream broke on (whole, or as
    much of it as arrived, cut at a line end) so that a request can still be answered.
    """

    head: bytes | None = None


class SipContentLengthError(SipFramingError):
    """Content-Length is missing, repeated or not a non-negative integer."""


class SipMessageTooLargeError(SipFramingError):
    """The message (or its headers alone) exceeds the configured size limit."""

    default_status = 513


class TransactionUsageError(SipError):
    """A transaction was driven in a way its state machine does not allow."""

    status = 500


def answer_status(error: SipError | ValueError) -> int:
    """The status a request is answered with when handling it raised ``error``."""
    return error.status if isinstance(error, SipError) else 400
