"""SIP, SIPS and TEL URIs (RFC 3261 section 19.1, RFC 3966), plus opaque URIs of other schemes.

Public API
----------
``Params(items=())``
    Ordered multi-map of parameters with case-insensitive names. Values are
    ``str`` or ``None`` for a flag parameter (``;lr``). Methods: ``get(name,
    default=None)``, ``name in params``, ``params[name]`` (``KeyError`` if
    absent), ``set(name, value=None)`` (replaces the first occurrence, or
    appends), ``remove(name)``, ``items() -> list[tuple[str, str | None]]``,
    ``names()``, ``copy()``, ``len()``, iteration over names, ``==``
    (names case-insensitive, values exact, order ignored).

``SipUri(scheme, host="", user=None, password=None, port=None, params=Params(), headers=[], opaque=None)``
    A parsed URI. For ``sip``/``sips`` every field is meaningful. For ``tel``
    the telephone-subscriber number is in ``user``, parameters in ``params``
    and ``host`` is empty. Any other scheme (``http:``, ``urn:``, ...) is kept
    verbatim in ``opaque`` (everything after ``scheme:``).

    Stored values are *unescaped* (``%41`` becomes ``A``); ``str(uri)``
    re-escapes exactly the characters the grammar does not allow in each
    component, so ``SipUri.parse(str(uri)) == uri``. ``host`` keeps IPv6
    references in brackets (``[2001:db8::1]``); ``host_address`` strips them.

    * ``SipUri.parse(text) -> SipUri`` raises ``SipUriError``.
    * ``str(uri)`` / ``uri.serialize()``.
    * Properties: ``is_sip`` (sip or sips), ``is_secure`` (sips), ``transport``
      (lower-case ``transport`` param or ``None``), ``lr``, ``maddr``,
      ``host_address``.
    * ``uri.copy()`` deep-copies params and headers.
    * ``==`` follows RFC 3261 19.1.4: scheme and host case-insensitive, user
      and password case-sensitive, explicit port differs from an absent one,
      ``user``/``ttl``/``method``/``maddr``/``transport`` params must match if
      present in either URI, other params only if present in both, headers must
      all match. ``tel`` numbers compare with visual separators removed.
      Instances are mutable and therefore unhashable.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.sip.errors import SipUriError

__all__ = ["Params", "SipUri", "escape", "unescape"]

_ALPHANUM = frozenset(string.ascii_letters + string.digits)
_MARK = frozenset("-_.!~*'()")
_UNRESERVED = _ALPHANUM | _MARK
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$")
_HOSTNAME_CHARS = _ALPHANUM | frozenset("-._")
_IPV6_CHARS = frozenset(string.hexdigits + ":.")
_SCHEME_CHARS = _ALPHANUM | frozenset("+-.")
_TEL_CHARS = frozenset(string.hexdigits + "*#+-.()pPwW")
_TEL_SEPARATORS = str.maketrans("", "", "-.()")
_HEX = frozenset(string.hexdigits)
# Characters never legal in any URI; used to validate opaque URIs of unknown schemes.
_OPAQUE_FORBIDDEN = frozenset(' \t\r\n<>"\\^`{|}\x7f') | frozenset(chr(c) for c in range(0x20))

# Parameters that make two SIP URIs differ even when only one side carries them (19.1.4).
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


class Params:
    """Ordered parameters with case-insensitive names; ``None`` marks a flag parameter."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self._items: list[tuple[str, str | None]] = list(items)

    def _index(self, name: str) -> int:
        key = name.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                return i
        return -1

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._index(name) >= 0

    def __getitem__(self, name: str) -> str | None:
        i = self._index(name)
        if i < 0:
            raise KeyError(name)
        return self._items[i][1]

    def get(self, name: str, default: str | None = None) -> str | None:
        i = self._index(name)
        return default if i < 0 else self._items[i][1]

    def set(self, name: str, value: str | None = None) -> None:
        i = self._index(name)
        if i < 0:
            self._items.append((name, value))
        else:
            self._items[i] = (self._items[i][0], value)

    def remove(self, name: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def items(self) -> list[tuple[str, str | None]]:
        return list(self._items)

    def names(self) -> list[str]:
        return [n for n, _ in self._items]

    def copy(self) -> Params:
        return Params(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return sorted((n.lower(), v or "") for n, v in self._items) == sorted(
            (n.lower(), v or "") for n, v in other._items
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Params({self._items!r})"


def unescape(text: str, what: str = "URI") -> str:
    """Decode ``%HH`` escapes; the resulting octets are read as UTF-8 (invalid octets survive)."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in _HEX for c in pair):
                raise SipUriError(f"bad escape sequence in {what}: {text!r}")
            out.append(int(pair, 16))
            i += 3
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


def escape(text: str, allowed: frozenset[str]) -> str:
    """Percent-encode every character of ``text`` that is not in ``allowed``."""
    if all(c in allowed for c in text):
        return text
    parts: list[str] = []
    for ch in text:
        if ch in allowed:
            parts.append(ch)
        else:
            parts.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(parts)


def _check_chars(raw: str, allowed: frozenset[str], what: str) -> str:
    for ch in raw:
        if ch not in allowed and ch != "%":
            raise SipUriError(f"invalid character {ch!r} in {what}")
    return unescape(raw, what)


def _parse_params(raw: str, what: str) -> Params:
    params = Params()
    for part in raw.split(";"):
        name, eq, value = part.partition("=")
        if not name:
            raise SipUriError(f"empty {what} parameter")
        dname = _check_chars(name, _PARAM_CHARS, f"{what} parameter")
        if eq:
            params._items.append((dname, _check_chars(value, _PARAM_CHARS, f"{what} parameter")))
        else:
            params._items.append((dname, None))
    return params


def _format_params(params: Params) -> str:
    out: list[str] = []
    for name, value in params.items():
        out.append(";" + escape(name, _PARAM_CHARS))
        if value is not None:
            out.append("=" + escape(value, _PARAM_CHARS))
    return "".join(out)


def _parse_host(raw: str) -> str:
    if not raw:
        raise SipUriError("missing host")
    if raw.startswith("["):
        if not raw.endswith("]") or len(raw) < 3 or any(c not in _IPV6_CHARS for c in raw[1:-1]):
            raise SipUriError(f"invalid IPv6 reference {raw!r}")
        if raw.count(":") < 2:
            raise SipUriError(f"invalid IPv6 reference {raw!r}")
        return raw
    if any(c not in _HOSTNAME_CHARS for c in raw) or raw.startswith((".", "-")):
        raise SipUriError(f"invalid host {raw!r}")
    return raw


def parse_hostport(raw: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 references in brackets); raises ``SipUriError``."""
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise SipUriError(f"unterminated IPv6 reference in {raw!r}")
        host_raw, rest = raw[: end + 1], raw[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipUriError(f"garbage after IPv6 reference in {raw!r}")
        port_raw = rest[1:] if rest else None
    else:
        host_raw, colon, port_text = raw.partition(":")
        port_raw = port_text if colon else None
    host = _parse_host(host_raw)
    port: int | None = None
    if port_raw is not None:
        if not port_raw.isascii() or not port_raw.isdigit() or len(port_raw) > 5:
            raise SipUriError(f"invalid port in {raw!r}")
        port = int(port_raw)
        if port > 65535:
            raise SipUriError(f"port out of range in {raw!r}")
    return host, port


def format_host(host: str) -> str:
    """Bracket a bare IPv6 address so it can be used as a URI or Via host."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


@dataclass(eq=False)
class SipUri:
    """A URI as used in SIP; see the module docstring for field semantics."""

    scheme: str
    host: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: list[tuple[str, str]] = field(default_factory=list)
    opaque: str | None = None

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme or not scheme[0].isascii() or not scheme[0].isalpha():
            raise SipUriError(f"missing or invalid URI scheme in {text!r}")
        if any(c not in _SCHEME_CHARS for c in scheme):
            raise SipUriError(f"invalid URI scheme in {text!r}")
        scheme = scheme.lower()
        if scheme in ("sip", "sips"):
            return cls._parse_sip(scheme, rest)
        if scheme == "tel":
            return cls._parse_tel(rest)
        if not rest or any(c in _OPAQUE_FORBIDDEN for c in rest):
            raise SipUriError(f"invalid {scheme} URI {text!r}")
        return cls(scheme=scheme, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> SipUri:
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user_raw, colon, pw_raw = userinfo.partition(":")
            if not user_raw:
                raise SipUriError("empty user part before '@'")
            user = _check_chars(user_raw, _USER_CHARS, "user part")
            if colon:
                password = _check_chars(pw_raw, _PASSWORD_CHARS, "password")
        rest, qmark, headers_raw = rest.partition("?")
        hostport, semi, params_raw = rest.partition(";")
        host, port = parse_hostport(hostport)
        params = _parse_params(params_raw, "URI") if semi else Params()
        headers: list[tuple[str, str]] = []
        if qmark:
            for part in headers_raw.split("&"):
                name, eq, value = part.partition("=")
                if not name or not eq:
                    raise SipUriError(f"invalid URI header {part!r}")
                headers.append(
                    (
                        _check_chars(name, _HEADER_CHARS, "URI header"),
                        _check_chars(value, _HEADER_CHARS, "URI header"),
                    )
                )
        return cls(
            scheme=scheme,
            host=host,
            user=user,
            password=password,
            port=port,
            params=params,
            headers=headers,
        )

    @classmethod
    def _parse_tel(cls, rest: str) -> SipUri:
        number, semi, params_raw = rest.partition(";")
        if not number or any(c not in _TEL_CHARS for c in number):
            raise SipUriError(f"invalid telephone number {number!r}")
        params = _parse_params(params_raw, "tel") if semi else Params()
        return cls(scheme="tel", user=number, params=params)

    # ------------------------------------------------------------ serialising
    def serialize(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{_format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(escape(self.user, _USER_CHARS))
            if self.password is not None:
                out.append(":" + escape(self.password, _PASSWORD_CHARS))
            out.append("@")
        out.append(format_host(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_format_params(self.params))
        if self.headers:
            out.append(
                "?"
                + "&".join(f"{escape(n, _HEADER_CHARS)}={escape(v, _HEADER_CHARS)}" for n, v in self.headers)
            )
        return "".join(out)

    __str__ = serialize

    def copy(self) -> SipUri:
        return SipUri(
            scheme=self.scheme,
            host=self.host,
            user=self.user,
            password=self.password,
            port=self.port,
            params=self.params.copy(),
            headers=list(self.headers),
            opaque=self.opaque,
        )

    # ------------------------------------------------------------- accessors
    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    @property
    def is_secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def host_address(self) -> str:
        """``host`` without IPv6 brackets, suitable for socket APIs."""
        if self.host.startswith("[") and self.host.endswith("]"):
            return self.host[1:-1]
        return self.host

    # ------------------------------------------------------------ comparison
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipUri):
            return NotImplemented
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            return (self.user or "").translate(_TEL_SEPARATORS).lower() == (other.user or "").translate(
                _TEL_SEPARATORS
            ).lower() and _lower_params(self.params) == _lower_params(other.params)
        if self.user != other.user or self.password != other.password:
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine, theirs = _lower_params(self.params), _lower_params(other.params)
        for name in _STRICT_PARAMS:
            if mine.get(name) != theirs.get(name):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        return sorted((n.lower(), v) for n, v in self.headers) == sorted(
            (n.lower(), v) for n, v in other.headers
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SipUri({self.serialize()!r})"


def _lower_params(params: Params) -> dict[str, str]:
    return {n.lower(): (v or "").lower() for n, v in params.items()}
