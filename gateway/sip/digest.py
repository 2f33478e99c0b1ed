"""Sans-I/O HTTP Digest authentication for SIP user agents.

Implements the client side of RFC 7616 (with the RFC 2617 and RFC 2069
compatibility forms) as profiled for SIP by RFC 3261 section 22.4 and
RFC 8760. The module takes header *values* as strings and returns header
values as strings; it never touches the network or the clock.

Public API
----------
Errors (every one carries ``hangup_cause == "auth_failed"``):

- ``DigestError`` -- base class.
- ``DigestParseError(DigestError)`` -- a challenge header value is malformed.
- ``UnsupportedDigestAlgorithm(DigestError)`` -- ``algorithm=`` names an
  algorithm this module cannot compute (attribute ``algorithm: str``).
- ``UnsupportedQop(DigestError)`` -- ``qop=`` offers neither ``auth`` nor
  ``auth-int`` (attribute ``qop: tuple[str, ...]``).
- ``AuthFailed(DigestError)`` -- the user agent must stop retrying
  (attributes ``reason: AuthFailureReason`` and ``realm: str | None``).

Header names:

- ``AuthHeaders(challenge, authorization)`` named tuple;
  ``WWW_AUTH = AuthHeaders("WWW-Authenticate", "Authorization")`` and
  ``PROXY_AUTH = AuthHeaders("Proxy-Authenticate", "Proxy-Authorization")``.
- ``auth_headers_for_status(status: int) -> AuthHeaders`` maps 401 to
  ``WWW_AUTH`` and 407 to ``PROXY_AUTH``; anything else raises ``DigestError``.

Challenges:

- ``DigestAlgorithm`` (``StrEnum``): ``MD5``, ``MD5-sess``, ``SHA-256``,
  ``SHA-256-sess``, ``SHA-512-256``, ``SHA-512-256-sess``.
  ``DigestAlgorithm.parse(token)`` is case-insensitive.
- ``DigestChallenge`` (frozen): ``realm``, ``nonce``, ``algorithm``
  (default MD5), ``qop: tuple[str, ...]`` (lower-cased), ``opaque``,
  ``stale``, ``domain: tuple[str, ...]``, ``userhash``, ``charset``,
  ``params`` (every parameter as received, names lower-cased).
  ``DigestChallenge.parse(header_value) -> DigestChallenge`` parses a value
  holding exactly one Digest challenge. ``.answerable`` tells whether
  ``compute_authorization`` can answer it.
- ``parse_challenges(header_values: str | Iterable[str]) -> list[DigestChallenge]``
  returns every Digest challenge found in one or several header values
  (several challenges may share one value), skipping other schemes and
  challenges with an unknown algorithm.
- ``select_challenges(challenges, policy="strongest") -> dict[str, DigestChallenge]``
  keeps one answerable challenge per realm. ``"strongest"`` prefers
  SHA-512-256 over SHA-256 over MD5 (ties go to the earlier one);
  ``"server_order"`` takes the topmost, as RFC 8760 section 2.4 suggests.
  Ranking by strength is the default because challenges are not integrity
  protected and an on-path attacker can reorder them (RFC 8760 section 3).

Answers:

- ``DigestCredentials(username, password)``.
- ``compute_authorization(challenge, credentials, method, digest_uri,
  body=b"", cnonce=None, nc=1) -> str`` returns the complete
  ``Authorization`` / ``Proxy-Authorization`` value. ``auth`` is used when
  offered, ``auth-int`` (hashing ``body``) only when ``auth`` is not, and an
  RFC 2069 response when the challenge has no ``qop``. ``cnonce`` defaults
  to a fresh ``secrets`` value.
- ``parse_auth_params(header_value) -> tuple[str, dict[str, str]]`` splits a
  single-challenge or credentials value into scheme and parameters.

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

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final, Literal, NamedTuple

__all__ = [
    "PROXY_AUTH",
    "WWW_AUTH",
    "AuthFailed",
    "AuthFailureReason",
    "AuthHeaders",
    "AuthState",
    "DigestAlgorithm",
    "DigestChallenge",
    "DigestCredentials",
    "DigestError",
    "DigestParseError",
    "DigestSession",
    "RetryReason",
    "SelectionPolicy",
    "UnsupportedDigestAlgorithm",
    "UnsupportedQop",
    "auth_headers_for_status",
    "compute_authorization",
    "parse_auth_params",
    "parse_challenges",
    "select_challenges",
]


# --------------------------------------------------------------------------- errors


class DigestError(Exception):
    """Base class: a digest challenge that cannot be answered."""

    hangup_cause: ClassVar[str] = "auth_failed"


class DigestParseError(DigestError):
    """A challenge or credentials header value is not well formed."""


class UnsupportedDigestAlgorithm(DigestError):
    """The challenge names an algorithm this module cannot compute."""

    def __init__(self, algorithm: str) -> None:
        super().__init__(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm


class UnsupportedQop(DigestError):
    """The challenge offers a qop list without ``auth`` or ``auth-int``."""

    def __init__(self, qop: tuple[str, ...]) -> None:
        super().__init__(f"no supported qop in {list(qop)!r}")
        self.qop = qop


class AuthFailureReason(StrEnum):
    NO_USABLE_CHALLENGE = "no_usable_challenge"
    CREDENTIALS_REJECTED = "credentials_rejected"
    MAX_ATTEMPTS = "max_attempts"
    STALE_LOOP = "stale_loop"


class AuthFailed(DigestError):
    """Authentication cannot succeed; the call should end with ``auth_failed``."""

    def __init__(self, reason: AuthFailureReason, message: str, realm: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.realm = realm


# --------------------------------------------------------------------------- header names


class AuthHeaders(NamedTuple):
    challenge: str
    authorization: str


WWW_AUTH: Final = AuthHeaders("WWW-Authenticate", "Authorization")
PROXY_AUTH: Final = AuthHeaders("Proxy-Authenticate", "Proxy-Authorization")


def auth_headers_for_status(status: int) -> AuthHeaders:
    """401 -> WWW-Authenticate/Authorization, 407 -> Proxy-Authenticate/Proxy-Authorization."""
    if status == 401:
        return WWW_AUTH
    if status == 407:
        return PROXY_AUTH
    raise DigestError(f"status {status} carries no digest challenge")


# --------------------------------------------------------------------------- algorithms


def _hash_available(name: str) -> bool:
    try:
        hashlib.new(name, b"", usedforsecurity=False)
    except ValueError:
        return False
    return True


class DigestAlgorithm(StrEnum):
    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"
    SHA512_256 = "SHA-512-256"
    SHA512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def parse(cls, token: str) -> DigestAlgorithm:
        wanted = token.strip().lower()
        for algorithm in cls:
            if algorithm.value.lower() == wanted:
                return algorithm
        raise UnsupportedDigestAlgorithm(token)

    @property
    def is_session(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def hash_name(self) -> str:
        return _HASH_NAMES[self.value.removesuffix("-sess")]

    @property
    def strength(self) -> int:
        """Larger is stronger; used to rank challenges for the same realm."""
        return _STRENGTH[self.hash_name]

    @property
    def available(self) -> bool:
        """Whether the local hashlib can compute it (SHA-512/256 needs OpenSSL)."""
        return _AVAILABLE[self.hash_name]

    def hexdigest(self, data: bytes) -> str:
        if not self.available:
            raise UnsupportedDigestAlgorithm(self.value)
        # MD5 is mandated by the protocol; the flag keeps FIPS-mode OpenSSL from refusing it.
        return hashlib.new(self.hash_name, data, usedforsecurity=False).hexdigest()


_HASH_NAMES: Final = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_STRENGTH: Final = {"md5": 0, "sha256": 1, "sha512_256": 2}
_AVAILABLE: Final = {name: _hash_available(name) for name in _STRENGTH}


# --------------------------------------------------------------------------- tokenizer

_WS: Final = " \t\r\n"
_WORD_END: Final = _WS + ',="'
_TOKEN68_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")


@dataclass
class _RawChallenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _scan_until(text: str, pos: int, stop: str) -> int:
    while pos < len(text) and text[pos] not in stop:
        pos += 1
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; return value and the index after it."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            if pos + 1 >= len(text):
                break
            out.append(text[pos + 1])
            pos += 2
            continue
        if ch == '"':
            return "".join(out), pos + 1
        out.append(ch)
        pos += 1
    raise DigestParseError("unterminated quoted string")


def _token68_at(text: str, pos: int) -> int | None:
    """End index of a token68 starting at pos, if one stands alone there (RFC 7235 section 2.1)."""
    end = pos
    while end < len(text) and text[end] in _TOKEN68_CHARS:
        end += 1
    if end == pos:
        return None
    end = _skip(text, end, "=")
    after = _skip(text, end, _WS)
    if after < len(text) and text[after] != ",":
        return None
    return end


def _tokenize(value: str) -> list[_RawChallenge]:
    """Split a WWW-Authenticate style value into challenges with their raw parameters."""
    challenges: list[_RawChallenge] = []
    current: _RawChallenge | None = None
    last_param: str | None = None
    pos = 0
    n = len(value)
    while True:
        pos = _skip(value, pos, _WS + ",")
        if pos >= n:
            break
        if value[pos] in '="':
            raise DigestParseError(f"unexpected {value[pos]!r} at offset {pos}")
        end = _scan_until(value, pos, _WORD_END)
        word = value[pos:end]
        after = _skip(value, end, _WS)
        if after < n and value[after] == "=":
            if current is None:
                raise DigestParseError(f"parameter {word!r} before any auth scheme")
            name = word.lower()
            vpos = _skip(value, after + 1, _WS)
            if vpos < n and value[vpos] == '"':
                param_value, pos = _quoted(value, vpos)
            else:
                pos = _scan_until(value, vpos, _WS + ',"')
                param_value = value[vpos:pos]
                if not param_value:
                    raise DigestParseError(f"parameter {name!r} has no value")
            if name in current.params:
                raise DigestParseError(f"parameter {name!r} repeated")
            current.params[name] = param_value
            last_param = name
            continue
        # Some servers send qop=auth,auth-int unquoted; the second token then stands alone.
        if current is not None and last_param == "qop" and word.lower() in ("auth", "auth-int"):
            current.params["qop"] += "," + word
            pos = end
            continue
        current = _RawChallenge(scheme=word)
        challenges.append(current)
        last_param = None
        pos = end
        t68_start = _skip(value, pos, _WS)
        if t68_start > pos:
            t68_end = _token68_at(value, t68_start)
            if t68_end is not None:
                current.token68 = value[t68_start:t68_end]
                pos = t68_end
    return challenges


def parse_auth_params(header_value: str) -> tuple[str, dict[str, str]]:
    """Scheme and parameters (names lower-cased, values unquoted) of a single-challenge value."""
    raw = _tokenize(header_value)
    if len(raw) != 1:
        raise DigestParseError(f"expected one auth scheme, found {len(raw)}")
    return raw[0].scheme, dict(raw[0].params)


# --------------------------------------------------------------------------- challenges


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    realm: str
    nonce: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    charset: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, header_value: str) -> DigestChallenge:
        """Parse a value holding exactly one Digest challenge."""
        raw = _tokenize(header_value)
        if len(raw) != 1:
            raise DigestParseError(
                f"expected one challenge, found {len(raw)}; use parse_challenges() for several"
            )
        return cls._from_raw(raw[0])

    @classmethod
    def _from_raw(cls, raw: _RawChallenge) -> DigestChallenge:
        if raw.scheme.lower() != "digest":
            raise DigestParseError(f"auth scheme {raw.scheme!r} is not Digest")
        if raw.token68 is not None:
            raise DigestParseError("Digest challenge carries a token68 instead of parameters")
        params = raw.params
        for required in ("realm", "nonce"):
            if required not in params:
                raise DigestParseError(f"Digest challenge lacks {required}")
        algorithm = (
            DigestAlgorithm.parse(params["algorithm"]) if "algorithm" in params else DigestAlgorithm.MD5
        )
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=algorithm,
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").strip().lower() == "true",
            domain=tuple(params.get("domain", "").split()),
            userhash=params.get("userhash", "").strip().lower() == "true",
            charset=params.get("charset"),
            params=tuple(params.items()),
        )

    @property
    def chosen_qop(self) -> Literal["auth", "auth-int"] | None:
        """The qop an answer uses: ``auth`` if offered, else ``auth-int``, else None (RFC 2069)."""
        if not self.qop:
            return None
        if "auth" in self.qop:
            return "auth"
        if "auth-int" in self.qop:
            return "auth-int"
        raise UnsupportedQop(self.qop)

    @property
    def answerable(self) -> bool:
        if not self.algorithm.available:
            return False
        return not self.qop or "auth" in self.qop or "auth-int" in self.qop


def parse_challenges(header_values: str | Iterable[str]) -> list[DigestChallenge]:
    """Every Digest challenge in the given header value(s), in order.

    Other schemes (Basic, Bearer, ...) and Digest challenges that are unusable
    (unknown algorithm, missing realm/nonce) are skipped; if nothing usable
    remains and a Digest challenge was skipped, that first problem is raised.
    Syntax errors in the header value always raise ``DigestParseError``.
    """
    values = [header_values] if isinstance(header_values, str) else list(header_values)
    found: list[DigestChallenge] = []
    first_error: DigestError | None = None
    for value in values:
        for raw in _tokenize(value):
            if raw.scheme.lower() != "digest":
                continue
            try:
                found.append(DigestChallenge._from_raw(raw))
            except DigestError as exc:
                first_error = first_error or exc
    if not found and first_error is not None:
        raise first_error
    return found


SelectionPolicy = Literal["strongest", "server_order"]


def select_challenges(
    challenges: Iterable[DigestChallenge], policy: SelectionPolicy = "strongest"
) -> dict[str, DigestChallenge]:
    """One answerable challenge per realm, realms in order of first appearance."""
    chosen: dict[str, DigestChallenge] = {}
    for challenge in challenges:
        if not challenge.answerable:
            continue
        current = chosen.get(challenge.realm)
        if current is None or (
            policy == "strongest" and challenge.algorithm.strength > current.algorithm.strength
        ):
            chosen[challenge.realm] = challenge
    return chosen


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
