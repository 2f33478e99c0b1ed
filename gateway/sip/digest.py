"""Answering digest challenges: the credentials a SIP user agent sends (sans-I/O).

Computes ``Authorization`` / ``Proxy-Authorization`` values for the challenges that
``gateway.sip.digest_challenge`` reads, per RFC 7616 (with the RFC 2617 and RFC 2069
compatibility forms) as profiled for SIP by RFC 3261 section 22.4 and RFC 8760, and keeps
the user agent's state between requests. Header values in, values out; no network, no clock.

Public API
----------
Errors: those of ``gateway.sip.digest_challenge`` (``DigestError`` and its subclasses),
plus ``AuthFailed(DigestError)`` -- the user agent must stop retrying (attributes
``reason: AuthFailureReason`` and ``realm: str | None``); ``status`` 403.

Answers:

- ``DigestCredentials(username, password)``.
- ``compute_authorization(challenge, credentials, method, digest_uri,
  body=b"", cnonce=None, nc=1) -> str`` returns the complete
  ``Authorization`` / ``Proxy-Authorization`` value. ``auth`` is used when
  offered, ``auth-int`` (hashing ``body``) only when ``auth`` is not, and an
  RFC 2069 response when the challenge has no ``qop``. ``cnonce`` defaults
  to a fresh ``secrets`` value.

State for a user agent:

- ``DigestSession(credentials, *, max_attempts=2, max_stale_retries=2,
  max_rounds=5, policy="strongest", cnonce_factory=None)`` (alias
  ``AuthState``). ``max_attempts`` caps, per realm, the challenges answered
  without ``stale=true``; ``max_stale_retries`` caps stale re-challenges per
  realm; ``max_rounds`` caps 401/407 responses in a row whatever their realm.
  Counters run from construction or the last ``on_success()``.

  - ``on_challenge(*, www_authenticate=(), proxy_authenticate=()) -> RetryReason``
    feeds the challenge header values of a 401/407 (a forking proxy may put
    both kinds in one response). Returns why a retry is allowed
    (``FIRST_CHALLENGE``, ``STALE_NONCE`` -- not counted as a failure -- or
    ``NEW_NONCE`` -- counted) or raises ``AuthFailed`` with a
    ``AuthFailureReason``: ``CREDENTIALS_REJECTED`` (the nonce we answered
    is challenged again without ``stale=true``), ``MAX_ATTEMPTS``,
    ``STALE_LOOP`` or ``NO_USABLE_CHALLENGE``.
  - ``authorization_headers(method, digest_uri, body=b"") -> list[tuple[str, str]]``
    gives ``(header name, value)`` for every realm known so far, counting
    ``nc`` up while a nonce is reused. Also usable pre-emptively for later
    requests in the same dialog or registration.
  - ``on_success()`` clears the failure counters after a request got past
    authentication; nonces are kept for reuse.
  - ``realms`` and ``reset()``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from gateway.sip.digest_challenge import (
    PROXY_AUTH,
    WWW_AUTH,
    AuthHeaders,
    DigestChallenge,
    DigestError,
    SelectionPolicy,
    parse_challenges,
    select_challenges,
)

__all__ = [
    "AuthFailed",
    "AuthFailureReason",
    "AuthState",
    "DigestCredentials",
    "DigestSession",
    "RetryReason",
    "compute_authorization",
]


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    username: str
    password: str = field(repr=False)


def _quote(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise DigestError("control characters in a digest parameter")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _new_cnonce() -> str:
    return secrets.token_hex(16)


def compute_authorization(
    challenge: DigestChallenge,
    credentials: DigestCredentials,
    method: str,
    digest_uri: str,
    body: bytes | str = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """Full ``Authorization`` / ``Proxy-Authorization`` header value answering ``challenge``.

    ``digest_uri`` is the Request-URI of the request being authorised, ``body``
    its message body (only hashed for ``auth-int``), ``nc`` the number of
    requests sent with this nonce including this one.
    """
    if not 1 <= nc <= 0xFFFFFFFF:
        raise DigestError(f"nonce count {nc} out of range")
    algorithm = challenge.algorithm
    qop = challenge.chosen_qop
    needs_cnonce = qop is not None or algorithm.is_session
    if needs_cnonce and cnonce is None:
        cnonce = _new_cnonce()
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body

    def h(text: str) -> str:
        return algorithm.hexdigest(text.encode("utf-8"))

    ha1 = h(f"{credentials.username}:{challenge.realm}:{credentials.password}")
    if algorithm.is_session:
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    a2 = f"{method}:{digest_uri}"
    if qop == "auth-int":
        a2 += ":" + algorithm.hexdigest(body_bytes)
    ha2 = h(a2)
    nc_text = f"{nc:08x}"
    if qop is None:
        response = h(f"{ha1}:{challenge.nonce}:{ha2}")
    else:
        response = h(f"{ha1}:{challenge.nonce}:{nc_text}:{cnonce}:{qop}:{ha2}")

    username = credentials.username
    if challenge.userhash:
        username = h(f"{credentials.username}:{challenge.realm}")
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(digest_uri)}",
        f'response="{response}"',
        f"algorithm={algorithm.value}",
    ]
    if cnonce is not None and needs_cnonce:
        parts.append(f"cnonce={_quote(cnonce)}")
    if qop is not None:
        parts.append(f"nc={nc_text}")
        parts.append(f"qop={qop}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


# --------------------------------------------------------------------------- user-agent state


class AuthFailureReason(StrEnum):
    NO_USABLE_CHALLENGE = "no_usable_challenge"
    CREDENTIALS_REJECTED = "credentials_rejected"
    MAX_ATTEMPTS = "max_attempts"
    STALE_LOOP = "stale_loop"


class AuthFailed(DigestError):
    """Authentication cannot succeed; the call should end with ``auth_failed`` (403: retrying
    with credentials will not help)."""

    status = 403

    def __init__(self, reason: AuthFailureReason, message: str, realm: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.realm = realm


class RetryReason(StrEnum):
    FIRST_CHALLENGE = "first_challenge"
    STALE_NONCE = "stale_nonce"
    NEW_NONCE = "new_nonce"


_SEVERITY: Final[Mapping[RetryReason, int]] = {
    RetryReason.FIRST_CHALLENGE: 0,
    RetryReason.STALE_NONCE: 1,
    RetryReason.NEW_NONCE: 2,
}


@dataclass
class _RealmState:
    headers: AuthHeaders
    challenge: DigestChallenge
    cnonce: str
    nc: int = 0
    answered_nonce: str | None = None
    attempts: int = 0
    stale_retries: int = 0


class DigestSession:
    """Per-user-agent digest state: nonce reuse, nonce counts, retry decisions.

    Realms are tracked separately for proxies (407 / Proxy-Authenticate) and
    the far end (401 / WWW-Authenticate), so one request can carry both.
    """

    def __init__(
        self,
        credentials: DigestCredentials,
        *,
        max_attempts: int = 2,
        max_stale_retries: int = 2,
        max_rounds: int = 5,
        policy: SelectionPolicy = "strongest",
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        if max_attempts < 1 or max_stale_retries < 0 or max_rounds < 1:
            raise DigestError("max_attempts and max_rounds must be >= 1, max_stale_retries >= 0")
        self.credentials = credentials
        self.max_attempts = max_attempts
        self.max_stale_retries = max_stale_retries
        self.max_rounds = max_rounds
        self._rounds = 0
        self.policy: SelectionPolicy = policy
        self._cnonce_factory = cnonce_factory or _new_cnonce
        self._realms: dict[tuple[bool, str], _RealmState] = {}

    @property
    def realms(self) -> tuple[str, ...]:
        return tuple(realm for _, realm in self._realms)

    def reset(self) -> None:
        """Forget every nonce and counter."""
        self._realms.clear()
        self._rounds = 0

    def on_success(self) -> None:
        """The request got past authentication: keep nonces, clear failure counters."""
        self._rounds = 0
        for state in self._realms.values():
            state.attempts = 0
            state.stale_retries = 0

    def on_challenge(
        self,
        *,
        www_authenticate: Iterable[str] = (),
        proxy_authenticate: Iterable[str] = (),
    ) -> RetryReason:
        """Take the challenge header values of a 401/407 and decide whether to retry.

        Raises ``AuthFailed`` instead of returning when the retry must not happen.
        """
        # Bounds servers that keep producing new realms, which no per-realm counter sees.
        self._rounds += 1
        if self._rounds > self.max_rounds:
            raise AuthFailed(
                AuthFailureReason.MAX_ATTEMPTS, f"still challenged after {self.max_rounds} rounds"
            )
        groups: list[tuple[AuthHeaders, list[DigestChallenge]]] = []
        for headers, values in ((WWW_AUTH, list(www_authenticate)), (PROXY_AUTH, list(proxy_authenticate))):
            try:
                groups.append((headers, parse_challenges(values)))
            except DigestError as exc:
                raise AuthFailed(
                    AuthFailureReason.NO_USABLE_CHALLENGE, f"unusable {headers.challenge}: {exc}"
                ) from exc

        outcome: RetryReason | None = None
        for headers, challenges in groups:
            for challenge in select_challenges(challenges, self.policy).values():
                reason = self._absorb(headers, challenge)
                if outcome is None or _SEVERITY[reason] > _SEVERITY[outcome]:
                    outcome = reason
        if outcome is None:
            raise AuthFailed(
                AuthFailureReason.NO_USABLE_CHALLENGE, "no Digest challenge that can be answered"
            )
        return outcome

    def _absorb(self, headers: AuthHeaders, challenge: DigestChallenge) -> RetryReason:
        key = (headers is PROXY_AUTH, challenge.realm)
        state = self._realms.get(key)
        if state is None:
            self._realms[key] = _RealmState(headers, challenge, self._cnonce_factory(), attempts=1)
            return RetryReason.FIRST_CHALLENGE
        if state.answered_nonce is None:
            self._adopt(state, challenge)
            state.attempts = max(state.attempts, 1)
            return RetryReason.FIRST_CHALLENGE
        if challenge.stale:
            if state.stale_retries >= self.max_stale_retries:
                raise AuthFailed(
                    AuthFailureReason.STALE_LOOP,
                    f"realm {challenge.realm!r} keeps reporting a stale nonce",
                    challenge.realm,
                )
            state.stale_retries += 1
            self._adopt(state, challenge)
            return RetryReason.STALE_NONCE
        if challenge.nonce == state.answered_nonce:
            raise AuthFailed(
                AuthFailureReason.CREDENTIALS_REJECTED,
                f"realm {challenge.realm!r} rejected the credentials",
                challenge.realm,
            )
        if state.attempts >= self.max_attempts:
            raise AuthFailed(
                AuthFailureReason.MAX_ATTEMPTS,
                f"realm {challenge.realm!r} rejected {state.attempts} attempts",
                challenge.realm,
            )
        state.attempts += 1
        self._adopt(state, challenge)
        return RetryReason.NEW_NONCE

    def _adopt(self, state: _RealmState, challenge: DigestChallenge) -> None:
        # A new nonce restarts nc; -sess keys are tied to the first cnonce used with a nonce.
        if challenge.nonce != state.challenge.nonce:
            state.nc = 0
            state.cnonce = self._cnonce_factory()
        state.challenge = challenge

    def authorization_headers(
        self, method: str, digest_uri: str, body: bytes | str = b""
    ) -> list[tuple[str, str]]:
        """``(header name, value)`` pairs for every known realm, advancing each nonce count."""
        out: list[tuple[str, str]] = []
        for state in self._realms.values():
            state.nc += 1
            value = compute_authorization(
                state.challenge,
                self.credentials,
                method,
                digest_uri,
                body=body,
                cnonce=state.cnonce,
                nc=state.nc,
            )
            state.answered_nonce = state.challenge.nonce
            out.append((state.headers.authorization, value))
        return out


AuthState = DigestSession
