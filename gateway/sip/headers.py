"""Header storage and the parsed forms of the headers a user agent needs.

Public API
----------
``Headers(fields=())``
    Ordered multi-map of ``(name, value)`` fields. Lookup is case-insensitive
    and understands compact forms (``v`` is ``Via``, ``i`` is ``Call-ID``...).
    Duplicates and order are preserved. Values are single header-field values
    with folding already removed; a comma-separated list received on one line
    for a list-valued header (``Via``, ``Contact``, ``Route``, ``Record-Route``,
    ``Allow``, ``Supported``...) is stored as one field per element.

    * ``add(name, value)`` appends; ``prepend(name, value)`` inserts before the
      first field of that name (or at the top) - e.g. a new Via.
    * ``get(name) -> str | None`` first value; ``get_all(name) -> list[str]``.
    * ``set(name, value)`` replaces every field of that name with one field at
      the position of the first; ``remove(name) -> int`` removes them all.
    * ``count(name)``, ``name in headers``, ``len()``, iteration over
      ``(name, value)``, ``items()``, ``copy()``, ``==`` (names compared
      canonically, order and values exact).
    * Names are validated as tokens and values may not contain CR or LF
      (``SipHeaderError``).

``canonical_name(name) -> str``
    Long form with conventional capitalisation for known headers (``"l"`` ->
    ``"Content-Length"``, ``"call-id"`` -> ``"Call-ID"``); unknown names are
    returned unchanged.

``NameAddr(uri, display_name=None, params=Params())`` - From, To, Contact, Route...
    ``NameAddr.parse(text)`` accepts name-addr and addr-spec forms; ``tag``
    property; ``with_tag(tag)``; ``str()`` always emits the ``<...>`` form.
    ``display_name`` is unquoted and unescaped. Header parameter values keep
    their quotes if they were quoted strings.

``Via(transport, host, port=None, params=Params(), protocol="SIP/2.0")``
    ``Via.parse(text)``; properties ``branch``, ``received``, ``rport``
    (``int | None``), ``has_rport`` (flag or value present), ``maddr``,
    ``sent_by`` (``"host[:port]"``); ``str()``. ``transport`` is upper case.

``CSeq(number, method)`` (NamedTuple) with ``CSeq.parse(text)``.

Tokenising helpers: ``split_list``, ``parse_header_params``, ``quote``,
``unquote``, ``is_token``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.sip.errors import SipHeaderError, SipParseError
from gateway.sip.uri import Params, SipUri, format_host, parse_hostport

__all__ = [
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "is_token",
    "parse_header_params",
    "quote",
    "split_list",
    "unquote",
]

TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
# gen-value = token / host / quoted-string; host adds ':' and brackets for IPv6.
_GEN_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")
_WS = " \t"
MAX_CSEQ = 2**31 - 1

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]
_CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN_NAMES}
_CANONICAL.update({k: v for k, v in COMPACT_FORMS.items()})

# Headers whose grammar is a comma-separated list of values (RFC 3261 7.3.1).
LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    )
)
# List headers whose elements carry addresses or transport data: an empty element is an error.
STRICT_LIST_HEADERS = frozenset(
    ("via", "contact", "route", "record-route", "path", "service-route", "p-asserted-identity")
)


def canonical_name(name: str) -> str:
    return _CANONICAL.get(name.lower(), name)


def _key(name: str) -> str:
    return _CANONICAL.get(name.lower(), name).lower()


def is_token(text: str) -> bool:
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def _check_field(name: str, value: str) -> None:
    if not is_token(name):
        raise SipHeaderError(f"invalid header name {name!r}", header=name)
    if "\r" in value or "\n" in value:
        raise SipHeaderError(f"line break in value of {name}", header=canonical_name(name))


class Headers:
    """Ordered, case-insensitive multi-map of header fields."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = []
        for name, value in fields:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        _check_field(name, value)
        self._fields.append((name, value))

    def prepend(self, name: str, value: str) -> None:
        _check_field(name, value)
        key = _key(name)
        for i, (n, _) in enumerate(self._fields):
            if _key(n) == key:
                self._fields.insert(i, (name, value))
                return
        self._fields.insert(0, (name, value))

    def get(self, name: str) -> str | None:
        key = _key(name)
        for n, v in self._fields:
            if _key(n) == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = _key(name)
        return [v for n, v in self._fields if _key(n) == key]

    def set(self, name: str, value: str) -> None:
        _check_field(name, value)
        key = _key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._fields:
            if _key(n) == key:
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((name, value))
        self._fields = out

    def remove(self, name: str) -> int:
        key = _key(name)
        before = len(self._fields)
        self._fields = [(n, v) for n, v in self._fields if _key(n) != key]
        return before - len(self._fields)

    def count(self, name: str) -> int:
        key = _key(name)
        return sum(1 for n, _ in self._fields if _key(n) == key)

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def copy(self) -> Headers:
        h = Headers()
        h._fields = list(self._fields)
        return h

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(_key(n), v) for n, v in self._fields] == [(_key(n), v) for n, v in other._fields]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


# --------------------------------------------------------------------------- tokenising


def _skip_quoted(text: str, start: int) -> int:
    """Return the index just past the quoted-string opening at ``start``; raise if unterminated."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise SipHeaderError("unterminated quoted string")


def _find_outside_quotes(text: str, ch: str) -> int:
    """Index of the first ``ch`` outside quoted strings, or -1."""
    i = 0
    n = len(text)
    while i < n:
        if text[i] == '"':
            i = _skip_quoted(text, i)
            continue
        if text[i] == ch:
            return i
        i += 1
    return -1


def _split_outside(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings and ``<...>``."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = _skip_quoted(text, i)
            continue
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if depth:
        raise SipHeaderError("unbalanced '<' in header value")
    parts.append(text[start:])
    return parts


def split_list(value: str) -> list[str]:
    """Split a list-valued header on commas outside quotes and angle brackets; strips elements."""
    return [p.strip(_WS) for p in _split_outside(value, ",")]


def unquote(text: str) -> str:
    """Decode a complete quoted-string (including its quotes)."""
    if len(text) < 2 or text[0] != '"' or _skip_quoted(text, 0) != len(text):
        raise SipHeaderError(f"invalid quoted string {text!r}")
    out: list[str] = []
    i = 1
    end = len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_header_params(text: str, header: str | None = None) -> Params:
    """Parse ``*( SEMI generic-param )``; ``text`` must be empty or start (after SWS) with ';'."""
    params = Params()
    if not text.strip(_WS):
        return params
    parts = _split_outside(text, ";")
    if parts[0].strip(_WS):
        raise SipHeaderError(f"unexpected text {parts[0].strip()!r} before parameters", header=header)
    for raw in parts[1:]:
        name, eq, value = raw.partition("=")
        name = name.strip(_WS)
        if not is_token(name):
            raise SipHeaderError(f"invalid parameter {raw.strip()!r}", header=header)
        if not eq:
            params._items.append((name, None))
            continue
        value = value.strip(_WS)
        if value.startswith('"'):
            unquote(value)
        elif not value or any(c not in _GEN_VALUE_CHARS for c in value):
            raise SipHeaderError(f"invalid value for parameter {name!r}", header=header)
        params._items.append((name, value))
    return params


def _format_params(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params.items())


# --------------------------------------------------------------------------- name-addr


@dataclass
class NameAddr:
    """``[display-name] <uri> *(;param)`` as found in From, To, Contact, Route, Record-Route."""

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default_factory=Params)

    @classmethod
    def parse(cls, text: str, header: str | None = None) -> NameAddr:
        s = text.strip(_WS)
        try:
            if s.startswith('"'):
                end = _skip_quoted(s, 0)
                display: str | None = unquote(s[:end])
                lt = end
                while lt < len(s) and s[lt] in _WS:
                    lt += 1
                if lt >= len(s) or s[lt] != "<":
                    raise SipHeaderError("expected '<' after display name", header=header)
                return cls._angle(s, lt, display, header)
            lt = _find_outside_quotes(s, "<")
            if lt >= 0:
                words = s[:lt].split()
                if any(not is_token(w) for w in words):
                    raise SipHeaderError("display name must be quoted or a token sequence", header=header)
                return cls._angle(s, lt, " ".join(words) or None, header)
            uri_text, semi, rest = s.partition(";")
            uri_text = uri_text.strip(_WS)
            if "?" in uri_text or "," in uri_text:
                raise SipHeaderError("URI with '?' or ',' must be enclosed in <>", header=header)
            uri = SipUri.parse(uri_text)
            return cls(uri=uri, params=parse_header_params(semi + rest, header))
        except SipHeaderError as exc:
            if exc.header is None:
                exc.header = header
            raise
        except SipParseError as exc:
            raise SipHeaderError(exc.reason, header=header) from exc

    @classmethod
    def _angle(cls, s: str, lt: int, display: str | None, header: str | None) -> NameAddr:
        gt = s.find(">", lt)
        if gt < 0:
            raise SipHeaderError("missing '>'", header=header)
        uri = SipUri.parse(s[lt + 1 : gt])
        return cls(uri=uri, display_name=display, params=parse_header_params(s[gt + 1 :], header))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        params = self.params.copy()
        params.set("tag", tag)
        return NameAddr(uri=self.uri.copy(), display_name=self.display_name, params=params)

    def copy(self) -> NameAddr:
        return NameAddr(uri=self.uri.copy(), display_name=self.display_name, params=self.params.copy())

    def serialize(self) -> str:
        display = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"

    __str__ = serialize


# --------------------------------------------------------------------------- Via


@dataclass
class Via:
    """One Via header value: ``SIP/2.0/<transport> host[:port] *(;param)``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        try:
            return cls._parse(text)
        except SipHeaderError as exc:
            exc.header = "Via"
            raise

    @classmethod
    def _parse(cls, text: str) -> Via:
        parts = _split_outside(text, ";")
        head = parts[0]
        pieces = head.split("/", 2)
        if len(pieces) != 3:
            raise SipHeaderError(f"invalid sent-protocol in Via {text!r}", header="Via")
        name, version = pieces[0].strip(_WS), pieces[1].strip(_WS)
        tail = pieces[2].lstrip(_WS).split(None, 1)
        if len(tail) != 2 or not is_token(name) or not is_token(version) or not is_token(tail[0]):
            raise SipHeaderError(f"invalid Via {text!r}", header="Via")
        transport, sent_by = tail[0].upper(), tail[1].strip(_WS)
        if ":" in sent_by and not sent_by.startswith("["):
            host_part, _, port_part = sent_by.partition(":")
            sent_by = f"{host_part.rstrip(_WS)}:{port_part.lstrip(_WS)}"
        elif sent_by.startswith("[") and "]" in sent_by:
            close = sent_by.index("]")
            rest = sent_by[close + 1 :].strip(_WS)
            if rest.startswith(":"):
                rest = ":" + rest[1:].lstrip(_WS)
            sent_by = sent_by[: close + 1] + rest
        if any(c in _WS for c in sent_by):
            raise SipHeaderError(f"invalid sent-by in Via {text!r}", header="Via")
        try:
            host, port = parse_hostport(sent_by)
        except SipParseError as exc:
            raise SipHeaderError(f"invalid sent-by in Via: {exc.reason}", header="Via") from exc
        params = parse_header_params(text[len(head) :], "Via")
        rport = params.get("rport")
        if rport is not None and (not rport.isascii() or not rport.isdigit() or int(rport) > 65535):
            raise SipHeaderError("invalid rport value", header="Via")
        return cls(
            transport=transport,
            host=host,
            port=port,
            params=params,
            protocol=f"{name.upper()}/{version}",
        )

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return int(value) if value else None

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def sent_by(self) -> str:
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    def copy(self) -> Via:
        return Via(self.transport, self.host, self.port, self.params.copy(), self.protocol)

    def serialize(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{_format_params(self.params)}"

    __str__ = serialize


# --------------------------------------------------------------------------- CSeq


class CSeq(NamedTuple):
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2:
            raise SipHeaderError(f"invalid CSeq {text!r}", header="CSeq")
        number, method = parts
        if not number.isascii() or not number.isdigit() or len(number) > 12 or int(number) > MAX_CSEQ:
            raise SipHeaderError(f"invalid CSeq number {number!r}", header="CSeq")
        if not is_token(method):
            raise SipHeaderError(f"invalid CSeq method {method!r}", header="CSeq")
        return cls(int(number), method)

    def __str__(self) -> str:
        return f"{self.number} {self.method}"
