"""SIP messages: data model, parser, serialiser and builders (RFC 3261 sections 7, 8, 20).

Data model
----------
``SipMessage`` (base, keyword-only fields)
    ``headers: Headers`` (see ``gateway.sip.headers``), ``body: bytes``,
    ``defects: list[str]`` - deviations a liberal parser accepted (extra SP in
    the request line, an unparseable Date, ...).
    Equality compares the start line, the headers except Content-Length, and
    the body (not ``defects``). Messages are mutable and unhashable.

``SipRequest(method, uri, *, headers=..., body=b"", defects=[])``
    ``method: str`` (case-sensitive, e.g. ``"INVITE"``), ``uri: SipUri``.
``SipResponse(status, reason="", *, headers=..., body=b"", defects=[])``
    ``status: int`` (100-699), ``reason: str``.
``SalvagedRequest(method, uri_text, version, *, headers=...)``
    what ``salvage_request`` recovers of a request ``parse_message`` refused:
    the request line as text and only the headers a response copies.

Both serialise with ``bytes(msg)`` / ``msg.serialize()``: start line, the
headers in order as ``Name: value`` lines, a blank line and the body. The
Content-Length value is always recomputed from ``body``: the first stored
Content-Length field is written in place with that value (further ones are
dropped), or one is appended after the other headers.

Accessors (all parse on access and raise ``SipHeaderError`` when the header is
missing or malformed; messages returned by ``parse_message`` already passed
these checks for the mandatory headers):

* ``call_id -> str``; ``cseq -> CSeq(number, method)``
* ``via -> Via`` (top), ``vias -> list[Via]``
* ``from_ -> NameAddr``, ``to -> NameAddr``, ``from_tag``/``to_tag -> str | None``
* ``contact -> NameAddr | None`` (first), ``contacts -> list[NameAddr]``
  (a ``*`` Contact is skipped; see ``has_star_contact``)
* ``record_route -> list[NameAddr]``, ``route -> list[NameAddr]`` (in message order)
* ``max_forwards -> int | None``
* ``content_type -> str | None`` (lower-case ``type/subtype``, parameters dropped)
* ``www_authenticate``/``proxy_authenticate -> list[str]`` (raw challenge values)
* ``header(name) -> str | None`` first raw value of any header
* ``is_request``; ``SipResponse.is_provisional``/``is_final``/``is_success``

Parsing
-------
``parse_message(data: bytes) -> SipRequest | SipResponse`` parses one datagram
or one frame produced by ``gateway.sip.framing.StreamFramer``. Leading CR/LF
are skipped. Headers are unfolded; compact and mixed-case names are stored in
their canonical long form; list-valued headers are split into one field per
element. If Content-Length is absent the body is the rest of the data
(datagram rule); octets beyond Content-Length are discarded (RFC 3261 18.3).
Validation: start line, SIP version (``SipVersionError``, status 505), a
parseable Request-URI without URI headers, at least one Via, exactly one
From/To/Call-ID/CSeq, CSeq method equal to the request method, at most one
Max-Forwards (0-255)/Content-Length/Content-Type, parseable Via, From, To,
Contact, Route and Record-Route values. Anything else raises a subclass of
``SipParseError``; no other exception escapes for any input.

``peek_call_id(data: bytes) -> str | None`` reads only the Call-ID (long or
compact ``i`` form, any case, folded values unfolded) from raw bytes, without
parsing anything else: the user agent asks it whether a message from a source it
does not trust can belong to one of its calls before paying for ``parse_message``.
None when there is no Call-ID, more than one, or an empty one. For any message
``parse_message`` accepts it returns that message's ``call_id``.

``salvage_request(data: bytes) -> SalvagedRequest | None`` is for a request that
``parse_message`` refused: if its request line still names a method and a SIP
version, and every Via and exactly one From, To, Call-ID and CSeq are valid, it
returns them, so the request can be answered with the error's status (400, 505,
513; RFC 3261 8.2.2, 21.4.1) by ``make_response``. Otherwise None: no answer is
possible (a response to it could not be matched or routed).

Builders
--------
* ``new_branch() -> str``  ``"z9hG4bK"`` + 20 random hex digits (RFC 3261 8.1.1.7)
* ``new_tag() -> str``     16 random hex digits
* ``new_call_id(host) -> str``  ``"<24 hex digits>@host"``
* ``make_request(method, uri, *, from_, to, call_id, cseq, via, max_forwards=70,
  contact=None, route=(), headers=(), body=b"", content_type=None) -> SipRequest``
  ``uri`` is a ``SipUri`` or text; ``from_``/``to``/``contact``/``route``
  items are ``NameAddr`` or raw header text; ``via`` a ``Via`` or text (the
  caller puts a ``new_branch()`` in it); ``headers`` extra ``(name, value)``
  pairs appended after Contact; ``cseq`` the number (method = ``method``).
* ``make_response(request, status, reason=None, *, to_tag=None, headers=(),
  body=b"", content_type=None) -> SipResponse`` copies every Via, From, To,
  Call-ID and CSeq (8.2.6.2); adds ``;tag=to_tag`` to To unless it already has a
  tag; copies Record-Route into 101-299 responses (12.1.1) and Timestamp into
  100 (8.2.6.1). ``reason`` defaults to the standard phrase. A status outside
  100-699 raises ``ValueError`` (a programming error, not a parse error).
* ``make_ack(invite, response) -> SipRequest`` ACK for a non-2xx final
  response (17.1.1.3): same Request-URI, top Via, From, Call-ID, CSeq number,
  Max-Forwards and Route headers; To taken from the response.
* ``make_cancel(invite) -> SipRequest`` (9.1): same Request-URI, top Via, From,
  To, Call-ID, CSeq number and Route headers.
* ``reason_phrase(status) -> str``
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.sip.errors import (
    SipHeaderError,
    SipParseError,
    SipStartLineError,
    SipUriError,
    SipVersionError,
)
from gateway.sip.headers import (
    LIST_HEADERS,
    STRICT_LIST_HEADERS,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    is_token,
    split_list,
)
from gateway.sip.uri import SipUri

__all__ = [
    "REASON_PHRASES",
    "SalvagedRequest",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "make_ack",
    "make_cancel",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "peek_call_id",
    "reason_phrase",
    "salvage_request",
]

MAGIC_COOKIE = "z9hG4bK"
SIP_VERSION = "SIP/2.0"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_SINGLE_HEADERS = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type")
_MANDATORY = ("Call-ID", "CSeq", "From", "To")  # exactly once in every message (with at least one Via)
_ADDRESS_HEADERS = ("Contact", "Route", "Record-Route")
_DATE_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DATE_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status, "")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- messages


@dataclass(kw_only=True, eq=False)
class SipMessage:
    """Fields and accessors shared by requests and responses."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    defects: list[str] = field(default_factory=list)

    def _identity(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        # Content-Length is derived from the body on output, so it takes no part in equality.
        if not isinstance(other, SipMessage):
            return NotImplemented
        if type(self) is not type(other) or self.body != other.body or self._identity() != other._identity():
            return False
        mine, theirs = self.headers.copy(), other.headers.copy()
        mine.remove("Content-Length")
        theirs.remove("Content-Length")
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_request(self) -> bool:
        return isinstance(self, SipRequest)

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        lines = [self.start_line()]
        length_written = False
        for name, value in self.headers:
            if canonical_name(name) == "Content-Length":
                # keep the first Content-Length where it was, with the real length
                if not length_written:
                    lines.append(f"{name}: {len(self.body)}")
                    length_written = True
            else:
                lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        return _encode("\r\n".join(lines)) + b"\r\n\r\n" + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()

    # -- generic access
    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipHeaderError(f"missing {name} header", header=name)
        return value

    # -- mandatory headers
    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def via(self) -> Via:
        return Via.parse(self._required("Via"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"), "From")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"), "To")

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    # -- optional headers
    @property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(v, "Contact") for v in self.headers.get_all("Contact") if v.strip() != "*"]

    @property
    def contact(self) -> NameAddr | None:
        contacts = self.contacts
        return contacts[0] if contacts else None

    @property
    def has_star_contact(self) -> bool:
        return any(v.strip() == "*" for v in self.headers.get_all("Contact"))

    @property
    def record_route(self) -> list[NameAddr]:
        return [NameAddr.parse(v, "Record-Route") for v in self.headers.get_all("Record-Route")]

    @property
    def route(self) -> list[NameAddr]:
        return [NameAddr.parse(v, "Route") for v in self.headers.get_all("Route")]

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        return _parse_max_forwards(value)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower() or None

    @property
    def www_authenticate(self) -> list[str]:
        return self.headers.get_all("WWW-Authenticate")

    @property
    def proxy_authenticate(self) -> list[str]:
        return self.headers.get_all("Proxy-Authenticate")


@dataclass(eq=False)
class SipRequest(SipMessage):
    method: str
    uri: SipUri

    def _identity(self) -> tuple[object, ...]:
        return (self.method, self.uri)

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass(eq=False)
class SalvagedRequest(SipMessage):
    """The answerable part of a request that failed to parse (see ``salvage_request``)."""

    method: str
    uri_text: str  # as received: it may be what made the request invalid
    version: str

    def _identity(self) -> tuple[object, ...]:
        return (self.method, self.uri_text, self.version)

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"


@dataclass(eq=False)
class SipResponse(SipMessage):
    status: int
    reason: str = ""

    def _identity(self) -> tuple[object, ...]:
        return (self.status, self.reason)

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return 100 <= self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


# --------------------------------------------------------------------------- parsing


def _parse_max_forwards(value: str) -> int:
    v = value.strip()
    if not v.isascii() or not v.isdigit() or len(v) > 6 or int(v) > 255:
        raise SipHeaderError(f"invalid Max-Forwards {value!r}", header="Max-Forwards")
    return int(v)


def _split_lines(data: bytes) -> tuple[list[bytes], bytes, bool]:
    """Return (header lines incl. start line, body, saw_blank_line)."""
    lines: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise SipParseError("message ends inside the header section")
        line = data[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        pos = nl + 1
        if not line:
            return lines, data[pos:], True
        lines.append(line)
    return lines, b"", False


def _parse_start_line(line: str, defects: list[str]) -> tuple[str, SipUri] | tuple[int, str]:
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        if version.upper() != SIP_VERSION:
            raise SipVersionError(f"unsupported SIP version {version!r}")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not code.isascii() or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipStartLineError(f"invalid status code {code!r}")
        if any(ord(c) < 0x20 and c != "\t" for c in reason):
            raise SipStartLineError("control character in reason phrase")
        return int(code), reason
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        parts = line.split()
        if len(parts) != 3:
            raise SipStartLineError(f"malformed request line {line!r}")
        defects.append("extra whitespace in request line")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipStartLineError(f"invalid method {method!r}")
    if version.upper() != SIP_VERSION:
        if version[:4].upper() == "SIP/":
            raise SipVersionError(f"unsupported SIP version {version!r}")
        raise SipStartLineError(f"malformed request line {line!r}")
    uri = SipUri.parse(uri_text)
    if uri.headers:
        raise SipUriError("headers are not allowed in a Request-URI")
    return method, uri


def _unfold(lines: list[bytes]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for raw in lines:
        if b"\r" in raw:
            raise SipHeaderError("bare CR in header section")
        line = _decode(raw)
        if line[0] in " \t":
            if not fields:
                raise SipHeaderError("continuation line before the first header")
            name, value = fields[-1]
            stripped = line.strip(" \t")
            if stripped:
                fields[-1] = (name, value + " " + stripped if value else stripped)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipHeaderError(f"malformed header line {line[:40]!r}")
        fields.append((name, value.strip(" \t")))
    return fields


def _build_headers(fields: list[tuple[str, str]]) -> Headers:
    headers = Headers()
    for raw_name, value in fields:
        name = canonical_name(raw_name)
        key = name.lower()
        if key in LIST_HEADERS and value:
            try:
                elements = split_list(value)
            except SipHeaderError as exc:
                exc.header = name
                raise
            if key in STRICT_LIST_HEADERS:
                if any(not e for e in elements):
                    raise SipHeaderError(f"empty element in {name}", header=name)
            else:
                elements = [e for e in elements if e] or [""]
            for element in elements:
                headers._fields.append((name, element))
        else:
            headers._fields.append((name, value))
    return headers


def _valid_date(value: str) -> bool:
    # rfc1123-date = wkday "," SP date1 SP time SP "GMT"
    parts = value.split()
    if len(parts) != 6 or parts[5] != "GMT" or not parts[0].endswith(","):
        return False
    if parts[0][:-1] not in _DATE_DAYS or parts[2] not in _DATE_MONTHS:
        return False
    day, year, hms = parts[1], parts[3], parts[4].split(":")
    digits = [day, year, *hms]
    return (
        len(day) == 2
        and len(year) == 4
        and len(hms) == 3
        and all(len(x) == 2 for x in hms)
        and all(x.isascii() and x.isdigit() for x in digits)
    )


def _validate(msg: SipRequest | SipResponse, defects: list[str]) -> None:
    headers = msg.headers
    for name in _SINGLE_HEADERS:
        count = headers.count(name)
        if count > 1:
            raise SipHeaderError(f"{name} appears {count} times", header=name)
        if count == 0 and name in _MANDATORY:
            raise SipHeaderError(f"missing {name} header", header=name)
    if "Via" not in headers:
        raise SipHeaderError("missing Via header", header="Via")
    msg.vias  # noqa: B018 - parse every Via to validate it
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    call_id = msg.call_id
    if not call_id or any(c in " \t" or ord(c) < 0x20 for c in call_id):
        raise SipHeaderError("invalid Call-ID", header="Call-ID")
    cseq = msg.cseq
    if isinstance(msg, SipRequest) and cseq.method != msg.method:
        raise SipHeaderError(
            f"CSeq method {cseq.method!r} does not match request method {msg.method!r}", header="CSeq"
        )
    msg.max_forwards  # noqa: B018
    for name in _ADDRESS_HEADERS:
        values = headers.get_all(name)
        if name == "Contact" and any(v.strip() == "*" for v in values) and len(values) > 1:
            raise SipHeaderError("'*' Contact combined with other contacts", header="Contact")
        for value in values:
            if name != "Contact" or value.strip() != "*":
                NameAddr.parse(value, name)
    date = headers.get("Date")
    if date is not None and not _valid_date(date):
        defects.append("invalid Date header ignored")


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one SIP message; raises a ``SipParseError`` subclass on malformed input."""
    start = 0
    while start < len(data) and data[start] in b"\r\n":
        start += 1
    if start == len(data):
        raise SipStartLineError("empty message")
    lines, rest, terminated = _split_lines(data[start:] if start else data)
    defects: list[str] = []
    if not terminated:
        defects.append("header section not terminated by an empty line")
    start_raw = lines[0]
    if b"\r" in start_raw:
        raise SipStartLineError("bare CR in start line")
    first = _parse_start_line(_decode(start_raw), defects)
    headers = _build_headers(_unfold(lines[1:]))

    length_value = headers.get("Content-Length")
    if length_value is not None and headers.count("Content-Length") == 1:
        length_text = length_value.strip()
        if not length_text.isascii() or not length_text.isdigit():
            raise SipHeaderError(f"invalid Content-Length {length_value!r}", header="Content-Length")
        length = int(length_text)
        if length > len(rest):
            raise SipHeaderError(
                f"Content-Length {length} exceeds the {len(rest)} octets received", header="Content-Length"
            )
        body = rest[:length]
    else:
        body = rest

    msg: SipRequest | SipResponse
    if isinstance(first[0], int):
        status, reason = first
        assert isinstance(status, int) and isinstance(reason, str)
        msg = SipResponse(status, reason, headers=headers, body=body)
    else:
        method, uri = first
        assert isinstance(method, str) and isinstance(uri, SipUri)
        msg = SipRequest(method, uri, headers=headers, body=body)
    _validate(msg, defects)
    msg.defects = defects
    return msg


_CALL_ID_NAMES = (b"call-id", b"i")


def peek_call_id(data: bytes) -> str | None:
    """The Call-ID of a raw message, reading nothing but the header lines; see the module docstring."""
    parts: list[bytes] = []
    found = 0
    collecting = False  # the previous field line was a Call-ID: continuation lines extend it
    in_headers = False  # past the start line (leading CR/LF lines are skipped as parse_message does)
    pos, end = 0, len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        if nl < 0:
            nl = end
        line = data[pos:nl].rstrip(b"\r")
        pos = nl + 1
        if not in_headers:
            in_headers = bool(line)
            continue
        if not line:
            break  # end of the header section
        if line[:1] in (b" ", b"\t"):
            if collecting and line.strip(b" \t"):
                parts.append(line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        collecting = bool(colon) and name.rstrip(b" \t").lower() in _CALL_ID_NAMES
        if collecting:
            found += 1
            parts = [value.strip(b" \t")]
    if found != 1:
        return None
    call_id = _decode(b" ".join(p for p in parts if p)).strip()
    return call_id or None


# Headers a response copies from its request (RFC 3261 8.2.6.2).
_ECHOED = frozenset({"via", "from", "to", "call-id", "cseq"})


def salvage_request(data: bytes) -> SalvagedRequest | None:
    """What an error response needs of a request that failed to parse; see the module docstring."""
    lines: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        if nl < 0:
            nl = end
        line = data[pos:nl]
        pos = nl + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if lines:
                break  # end of the header section
            continue  # leading CR/LF
        lines.append(line)
    if not lines:
        return None
    parts = _decode(lines[0]).split()
    if len(parts) < 3 or not is_token(parts[0]) or parts[-1][:4].upper() != "SIP/":
        return None  # not a request line (a response, or not SIP at all)
    fields: list[tuple[str, str]] = []
    keep = False  # the previous field line is one we keep: continuation lines extend it
    for raw in lines[1:]:
        text = _decode(raw)
        if "\r" in text:
            keep = False  # a bare CR makes this field unusable; the others may still be fine
        elif text[0] in " \t":
            stripped = text.strip(" \t")
            if keep and stripped:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {stripped}" if value else stripped)
        else:
            name, colon, value = text.partition(":")
            name = canonical_name(name.rstrip(" \t"))
            keep = bool(colon) and name.lower() in _ECHOED
            if keep:
                fields.append((name, value.strip(" \t")))
    try:
        request = SalvagedRequest(parts[0], " ".join(parts[1:-1]), parts[-1], headers=_build_headers(fields))
        if "Via" not in request.headers or any(request.headers.count(n) != 1 for n in _MANDATORY):
            return None
        request.vias  # noqa: B018 - the response copies every Via: each must be valid
        request.from_  # noqa: B018
        request.to  # noqa: B018
        request.cseq  # noqa: B018
        call_id = request.call_id
    except SipParseError:
        return None
    if not call_id or any(c in " \t" or ord(c) < 0x20 for c in call_id):
        return None
    return request


# --------------------------------------------------------------------------- builders


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_tag() -> str:
    return secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def make_request(
    method: str,
    uri: SipUri | str,
    *,
    from_: NameAddr | str,
    to: NameAddr | str,
    call_id: str,
    cseq: int,
    via: Via | str,
    max_forwards: int = 70,
    contact: NameAddr | str | None = None,
    route: Iterable[NameAddr | str] = (),
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipRequest:
    """Build a request; header order: Via, Max-Forwards, Route, From, To, Call-ID, CSeq, Contact, extras."""
    h = Headers()
    h.add("Via", _text(via))
    h.add("Max-Forwards", str(max_forwards))
    for r in route:
        h.add("Route", _text(r))
    h.add("From", _text(from_))
    h.add("To", _text(to))
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    if contact is not None:
        h.add("Contact", _text(contact))
    for name, value in headers:
        h.add(name, value)
    if content_type is not None:
        h.set("Content-Type", content_type)
    request_uri = uri if isinstance(uri, SipUri) else SipUri.parse(uri)
    return SipRequest(method, request_uri, headers=h, body=body)


def make_response(
    request: SipRequest | SalvagedRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """Build a response to ``request`` following RFC 3261 8.2.6."""
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} out of range")
    src = request.headers
    h = Headers()
    for value in src.get_all("Via"):
        h.add("Via", value)
    if 100 < status < 300:
        for value in src.get_all("Record-Route"):
            h.add("Record-Route", value)
    h.add("From", request._required("From"))
    to_value = request._required("To")
    if to_tag is not None and request.to.tag is None:
        to_value = f"{to_value};tag={to_tag}"
    h.add("To", to_value)
    h.add("Call-ID", request._required("Call-ID"))
    h.add("CSeq", request._required("CSeq"))
    if status == 100:
        timestamp = src.get("Timestamp")
        if timestamp is not None:
            h.add("Timestamp", timestamp)
    for name, value in headers:
        h.add(name, value)
    if content_type is not None:
        h.set("Content-Type", content_type)
    return SipResponse(status, reason_phrase(status) if reason is None else reason, headers=h, body=body)


def _in_transaction_request(invite: SipRequest, method: str, to_value: str) -> SipRequest:
    h = Headers()
    h.add("Via", invite._required("Via"))
    h.add("Max-Forwards", str(invite.max_forwards if invite.max_forwards is not None else 70))
    for value in invite.headers.get_all("Route"):
        h.add("Route", value)
    h.add("From", invite._required("From"))
    h.add("To", to_value)
    h.add("Call-ID", invite._required("Call-ID"))
    h.add("CSeq", f"{invite.cseq.number} {method}")
    return SipRequest(method, invite.uri.copy(), headers=h)


def make_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """ACK for a non-2xx final response, built by the INVITE client transaction (17.1.1.3)."""
    return _in_transaction_request(invite, "ACK", response._required("To"))


def make_cancel(invite: SipRequest) -> SipRequest:
    """CANCEL for a pending INVITE (9.1)."""
    return _in_transaction_request(invite, "CANCEL", invite._required("To"))
