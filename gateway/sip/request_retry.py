"""Sending a request of ours again: after a 401/407 with credentials (RFC 3261 22.2, 22.3),
after a 422 with a longer session interval (RFC 4028 section 6).

One policy for every request of a call that may be retried (the initial INVITE, a session
refresh, the BYE) and one count of the challenges answered for the request in flight.
``start`` when a request goes out that is not a retry; ``retry(response)`` for its final
response says whether to send it again, and takes what the retry needs (the challenge, the
longer interval). Retries of two requests never interleave: the INVITE's end with its 2xx, a
refresh starts only in the confirmed dialog, and a refresh is no longer retried once the BYE
is on its way.

A request is retried after at most ``max_auth_attempts`` challenges and one 422 (only an
INVITE carries a session interval). ``DigestSession`` adds its own limits (a nonce that is
challenged again means wrong credentials).
"""

from __future__ import annotations

from gateway.sip.digest import DigestSession
from gateway.sip.digest_challenge import DigestError
from gateway.sip.message import SipResponse
from gateway.sip.session_timer import SessionTimer

__all__ = ["RetryPolicy"]


class RetryPolicy:
    def __init__(
        self, digest: DigestSession | None, max_auth_attempts: int, session: SessionTimer | None = None
    ) -> None:
        self._digest = digest
        self._max_auth_attempts = max_auth_attempts
        self._session = session
        self._auth_attempts = 0
        self._interval_raised = False

    @property
    def challenged(self) -> bool:
        """The request in flight was challenged: its retries carry credentials."""
        return self._auth_attempts > 0

    def start(self) -> None:
        """A new request goes out (not a retry): nothing answered for it yet."""
        self._auth_attempts = 0
        self._interval_raised = False

    def retry(self, response: SipResponse) -> bool:
        """Whether the request this final response answers goes out again."""
        if response.status in (401, 407):
            return self._answer_challenge(response)
        if response.status == 422 and response.cseq.method == "INVITE":
            return self._lengthen_interval(response)
        return False

    def credentials(self, method: str, uri: str, body: bytes) -> list[tuple[str, str]]:
        """Authorization headers for every realm that challenged us so far."""
        if self._digest is None:
            return []
        return self._digest.authorization_headers(method, uri, body)

    def succeeded(self) -> None:
        """The call's INVITE got past authentication: the digest session forgets its failures."""
        if self._digest is not None:
            self._digest.on_success()

    def _answer_challenge(self, response: SipResponse) -> bool:
        if self._digest is None or self._auth_attempts >= self._max_auth_attempts:
            return False
        try:
            self._digest.on_challenge(
                www_authenticate=response.www_authenticate,
                proxy_authenticate=response.proxy_authenticate,
            )
        except DigestError:
            return False
        self._auth_attempts += 1
        return True

    def _lengthen_interval(self, response: SipResponse) -> bool:
        if self._session is None or self._interval_raised:
            return False
        if not self._session.interval_too_small(response):
            return False
        self._interval_raised = True
        return True
