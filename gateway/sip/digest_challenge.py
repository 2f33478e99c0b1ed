"""Digest challenges (RFC 7616, RFC 8760, as profiled for SIP by RFC 3261 section 22.4), sans-I/O.

Reads the challenges of a 401/407 (``WWW-Authenticate``, ``Proxy-Authenticate``) and picks
the ones to answer; ``gateway.sip.digest`` computes the answers and keeps the user agent's
state between requests. Header values in, values out; no network, no clock.

Public API
----------
Errors (``SipError`` subclasses, each with its ``status``; every one carries
``hangup_cause == "auth_failed"``):

- ``DigestError`` -- base class, ``status`` 500 (a value no header can carry,
  a misuse such as a nonce count out of range).
- ``DigestParseError(DigestError)`` -- a challenge header value is malformed; 400.
- ``UnsupportedDigestAlgorithm(DigestError)`` -- ``algorithm=`` names an
  algorithm this module cannot compute (attribute ``algorithm: str``); 400.
- ``UnsupportedQop(DigestError)`` -- ``qop=`` offers neither ``auth`` nor
  ``auth-int`` (attribute ``qop: tuple[str, ...]``); 400.

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
- ``parse_auth_params(header_value) -> tuple[str, dict[str, str]]`` splits a
  single-challenge or credentials value into scheme and parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final, Literal, NamedTuple

from gateway.sip.errors import SipError

__all__ = [
    "PROXY_AUTH",
    "WWW_AUTH",
    "AuthHeaders",
    "DigestAlgorithm",
    "DigestChallenge",
    "DigestError",
    "DigestParseError",
    "SelectionPolicy",
    "UnsupportedDigestAlgorithm",
    "UnsupportedQop",
    "auth_headers_for_status",
    "parse_auth_params",
    "parse_challenges",
    "select_challenges",
]


# --------------------------------------------------------------------------- errors


class DigestError(SipError):
    """Base class: a digest challenge that cannot be answered.

    Raised as such only for what we cannot put in a header or a misuse (500).
    """

    status = 500
    hangup_cause: ClassVar[str] = "auth_failed"


class DigestParseError(DigestError):
    """A challenge or credentials header value is not well formed (400)."""

    status = 400


class UnsupportedDigestAlgorithm(DigestError):
    """The challenge names an algorithm this module cannot compute (400)."""

    status = 400

    def __init__(self, algorithm: str) -> None:
        super().__init__(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm


class UnsupportedQop(DigestError):
    """The challenge offers a qop list without ``auth`` or ``auth-int`` (400)."""

    status = 400

    def __init__(self, qop: tuple[str, ...]) -> None:
        super().__init__(f"no supported qop in {list(qop)!r}")
        self.qop = qop


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
