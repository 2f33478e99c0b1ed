"""Sans-I/O SDP (RFC 4566): the session description model and its parser.

Only text in, text out: nothing here opens sockets or reads clocks. Offer/answer (RFC 3264)
is ``gateway.sip.offer_answer``.

Public API
----------
Errors (``SipError`` subclasses: ``status`` is the SIP status of the answer to a request
whose SDP caused them; ``sip_status`` is the same value):

- ``SdpError`` -- base class, ``status`` 500 (a local misuse, e.g. an
  unknown codec name given to ``build_offer``), ``warning_code: int | None``.
- ``SdpParseError(SdpError)`` -- the text is not SDP; ``status`` 400,
  ``line_number: int | None`` (1-based).
- ``SdpNegotiationError(SdpError)`` (``gateway.sip.offer_answer``) -- no
  usable audio stream; ``status`` 488.

Model (mutable dataclasses; ``parse`` and ``serialize`` round-trip):

- ``MediaDirection`` (``StrEnum``: ``sendrecv``, ``sendonly``, ``recvonly``,
  ``inactive``) with ``sends``, ``receives``, ``reversed()``,
  ``intersect(other)`` and ``from_flags(sends, receives)``;
  ``parse_direction(value)`` takes a name and raises ``SdpError`` for others.
- ``Origin(username, session_id: int, session_version: int, address,
  nettype="IN", addrtype="IP4")`` for ``o=``.
- ``Connection(address, addrtype="IP4", nettype="IN")`` for ``c=``;
  ``Connection.for_address(address)`` (``address_type``: IP6 when the address
  has a colon); ``host`` drops a multicast ``/ttl``; ``is_hold`` is true for
  ``0.0.0.0`` (``NULL_ADDRESS``) / ``::`` (RFC 2543 hold).
- ``Timing(start=0, stop=0, repeats=[])`` for ``t=`` and its ``r=`` lines.
- ``Attribute(name, value=None)`` for ``a=name[:value]``.
- ``RtpMap(payload_type, encoding, clock_rate, channels=None)`` with
  ``RtpMap.parse("0 PCMU/8000")`` and ``matches(other)`` (same codec by
  case-insensitive name, clock rate and channels, whatever the payload
  type); ``STATIC_PAYLOAD_TYPES: dict[int, RtpMap]`` is the RFC 3551 table.
- ``MediaDescription(media, port, proto, formats: list[str], port_count=None,
  title=None, connections=[], bandwidths=[], key=None, attributes=[],
  extra_lines=[])`` with helpers ``connection``, ``is_rtp``,
  ``payload_types``, ``get(name)``, ``get_all(name)``, ``has(name)``,
  ``rtpmaps()``, ``rtpmap(pt)`` (explicit or RFC 3551 static), ``fmtp(pt)``,
  ``ptime``, ``maxptime``, ``direction`` (media level only),
  ``set_direction(d)``, ``rtcp`` (``(port, Connection | None)``), ``rtcp_mux``.
- ``SessionDescription(origin, session_name="-", version=0, ...,
  connection=None, times=[Timing()], attributes=[], media=[], extra_lines=[])``:
  ``SessionDescription.parse(text: str | bytes)`` accepts CRLF or LF;
  ``serialize() -> str`` always writes CRLF; ``to_bytes()``;
  ``media_connection(m)`` (media ``c=`` over session ``c=``);
  ``media_direction(m)`` (media attribute, then session attribute, then
  sendrecv); ``audio()`` / ``audio_index()`` for the first audio stream.
  Unknown attributes and unknown line types are preserved.

``NegotiatedMedia``, what offer/answer agrees on, lives in ``media.negotiated`` with
``MediaDirection``; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from gateway.sip.errors import SipError
from media.negotiated import MediaDirection, NegotiatedMedia

__all__ = [
    "NULL_ADDRESS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Connection",
    "MediaDescription",
    "MediaDirection",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SdpError",
    "SdpParseError",
    "SessionDescription",
    "Timing",
    "address_type",
    "parse_direction",
]


# --------------------------------------------------------------------------- errors


class SdpError(SipError):
    """Base class for SDP problems; ``status`` is the response to an offer that caused it.

    Raised as such only for a local misuse (500), such as a codec we cannot offer.
    """

    status = 500

    def __init__(self, message: str, *, warning_code: int | None = None) -> None:
        super().__init__(message)
        self.warning_code = warning_code

    @property
    def sip_status(self) -> int:
        """The same as ``status`` (the name this module used first)."""
        return self.status


class SdpParseError(SdpError):
    """The body is not a well-formed session description (400)."""

    status = 400

    def __init__(self, message: str, line_number: int | None = None) -> None:
        where = f"line {line_number}: " if line_number is not None else ""
        super().__init__(where + message)
        self.line_number = line_number


# --------------------------------------------------------------------------- small types


def parse_direction(value: MediaDirection | str) -> MediaDirection:
    """A direction given by name; SdpError for anything else."""
    try:
        return MediaDirection(value)
    except ValueError:
        raise SdpError(f"unknown media direction {value!r}") from None


_DIRECTIONS: Final = frozenset(d.value for d in MediaDirection)
NULL_ADDRESS: Final = "0.0.0.0"  # noqa: S104 -- the RFC 2543 hold address; nothing binds to it
_HOLD_ADDRESSES: Final = frozenset({NULL_ADDRESS, "::"})


@dataclass(slots=True)
class Origin:
    username: str
    session_id: int
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class Connection:
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, address_type(address))

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def is_hold(self) -> bool:
        return self.host in _HOLD_ADDRESSES

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


def address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


@dataclass(slots=True)
class Timing:
    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Attribute:
    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        parts = value.split(None, 1)
        if len(parts) != 2:
            raise SdpParseError(f"malformed rtpmap {value!r}")
        pt = _payload_type(parts[0])
        fields = parts[1].strip().split("/")
        if len(fields) not in (2, 3) or not fields[0] or not all(f.isdigit() for f in fields[1:]):
            raise SdpParseError(f"malformed rtpmap {value!r}")
        channels = int(fields[2]) if len(fields) == 3 else None
        return cls(pt, fields[0], int(fields[1]), channels)

    def matches(self, other: RtpMap) -> bool:
        """Same codec, whatever payload type number each side gave it."""
        return (
            self.encoding.lower() == other.encoding.lower()
            and self.clock_rate == other.clock_rate
            and (self.channels or 1) == (other.channels or 1)
        )

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


def _payload_type(text: str) -> int:
    if not text.isdigit() or int(text) > 127:
        raise SdpParseError(f"bad RTP payload type {text!r}")
    return int(text)


# RFC 3551 static audio payload types.
STATIC_PAYLOAD_TYPES: Final[dict[int, RtpMap]] = {
    pt: RtpMap(pt, name, rate, ch)
    for pt, name, rate, ch in (
        (0, "PCMU", 8000, None),
        (3, "GSM", 8000, None),
        (4, "G723", 8000, None),
        (5, "DVI4", 8000, None),
        (6, "DVI4", 16000, None),
        (7, "LPC", 8000, None),
        (8, "PCMA", 8000, None),
        (9, "G722", 8000, None),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, None),
        (12, "QCELP", 8000, None),
        (13, "CN", 8000, None),
        (14, "MPA", 90000, None),
        (15, "G728", 8000, None),
        (16, "DVI4", 11025, None),
        (17, "DVI4", 22050, None),
        (18, "G729", 8000, None),
    )
}


# --------------------------------------------------------------------------- media section


def _find(attributes: Iterable[Attribute], name: str) -> list[Attribute]:
    wanted = name.lower()
    return [a for a in attributes if a.name.lower() == wanted]


def _attr_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return int(number) if number > 0 else None


def _direction_of(attributes: Iterable[Attribute]) -> MediaDirection | None:
    for attribute in attributes:
        if attribute.value is None and attribute.name.lower() in _DIRECTIONS:
            return MediaDirection(attribute.name.lower())
    return None


@dataclass(slots=True)
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[str] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper().startswith("RTP/")

    @property
    def payload_types(self) -> list[int]:
        return [_payload_type(f) for f in self.formats] if self.is_rtp else []

    def get(self, name: str) -> str | None:
        """Value of the first attribute called ``name`` (case-insensitive); None if absent or a flag."""
        found = _find(self.attributes, name)
        return found[0].value if found else None

    def get_all(self, name: str) -> list[str | None]:
        return [a.value for a in _find(self.attributes, name)]

    def has(self, name: str) -> bool:
        return bool(_find(self.attributes, name))

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Explicit ``a=rtpmap`` entries by payload type."""
        out: dict[int, RtpMap] = {}
        for value in self.get_all("rtpmap"):
            if value is not None:
                rtpmap = RtpMap.parse(value)
                out.setdefault(rtpmap.payload_type, rtpmap)
        return out

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """Explicit rtpmap for the payload type, else its RFC 3551 static meaning."""
        return self.rtpmaps().get(payload_type) or STATIC_PAYLOAD_TYPES.get(payload_type)

    def fmtp(self, payload_type: int) -> str | None:
        for value in self.get_all("fmtp"):
            if value is None:
                continue
            head, _, params = value.partition(" ")
            if head.strip() == str(payload_type):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        return _attr_int(self.get("ptime"))

    @property
    def maxptime(self) -> int | None:
        return _attr_int(self.get("maxptime"))

    @property
    def direction(self) -> MediaDirection | None:
        """Direction attribute at media level only; see ``SessionDescription.media_direction``."""
        return _direction_of(self.attributes)

    def set_direction(self, direction: MediaDirection | str) -> None:
        wanted = parse_direction(direction)
        kept = [a for a in self.attributes if not (a.value is None and a.name.lower() in _DIRECTIONS)]
        self.attributes = [*kept, Attribute(wanted.value)]

    @property
    def rtcp(self) -> tuple[int, Connection | None] | None:
        """RFC 3605 ``a=rtcp`` as (port, optional address)."""
        value = self.get("rtcp")
        if value is None:
            return None
        parts = value.split()
        if not parts or not parts[0].isdigit():
            return None
        conn = Connection(parts[3], parts[2], parts[1]) if len(parts) == 4 else None
        return int(parts[0]), conn

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")

    def _lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={' '.join([self.media, port, self.proto, *self.formats])}"]
        if self.title is not None:
            lines.append(f"i={self.title}")
        lines += [f"c={c}" for c in self.connections]
        lines += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={a}" for a in self.attributes]
        lines += [f"{t}={v}" for t, v in self.extra_lines]
        return lines


# --------------------------------------------------------------------------- session


@dataclass(slots=True)
class SessionDescription:
    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    times: list[Timing] = field(default_factory=lambda: [Timing()])
    zone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)

    # ---- queries

    @property
    def direction(self) -> MediaDirection | None:
        return _direction_of(self.attributes)

    def media_connection(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection

    def media_direction(self, media: MediaDescription) -> MediaDirection:
        return media.direction or self.direction or MediaDirection.SENDRECV

    def audio_index(self) -> int | None:
        for index, media in enumerate(self.media):
            if media.media.lower() == "audio":
                return index
        return None

    def audio(self) -> MediaDescription | None:
        index = self.audio_index()
        return None if index is None else self.media[index]

    # ---- text

    def serialize(self) -> str:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines += [f"e={e}" for e in self.emails]
        lines += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={b}" for b in self.bandwidths]
        for timing in self.times:
            lines.append(f"t={timing.start} {timing.stop}")
            lines += [f"r={r}" for r in timing.repeats]
        if self.zone is not None:
            lines.append(f"z={self.zone}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={a}" for a in self.attributes]
        lines += [f"{t}={v}" for t, v in self.extra_lines]
        for media in self.media:
            lines += media._lines()
        return "\r\n".join(lines) + "\r\n"

    def to_bytes(self) -> bytes:
        return self.serialize().encode("utf-8")

    def __str__(self) -> str:
        return self.serialize()

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpParseError("body is not UTF-8") from exc
        return _Parser(text).run()


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = [
            (number, line.rstrip("\r"))
            for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1)
            if line.strip()
        ]
        self.number = 0

    def fail(self, message: str) -> SdpParseError:
        return SdpParseError(message, self.number)

    def run(self) -> SessionDescription:
        if not self.lines:
            raise SdpParseError("empty session description")
        origin: Origin | None = None
        version: int | None = None
        session_name: str | None = None
        session = SessionDescription(origin=Origin("-", 0, 0, NULL_ADDRESS), times=[])
        media: MediaDescription | None = None
        for number, line in self.lines:
            self.number = number
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise self.fail(f"not an SDP line: {line[:40]!r}")
            kind, value = line[0], line[2:]
            if version is None:
                if kind != "v":
                    raise self.fail("session description must start with v=")
                if value.strip() != "0":
                    raise self.fail(f"unsupported SDP version {value!r}")
                version = 0
                continue
            if kind == "v":
                raise self.fail("repeated v= line")
            if kind == "m":
                media = self.media_line(value)
                session.media.append(media)
            elif media is None:
                if kind == "o":
                    if origin is not None:
                        raise self.fail("repeated o= line")
                    origin = self.origin_line(value)
                elif kind == "s":
                    if session_name is not None:
                        raise self.fail("repeated s= line")
                    session_name = value
                else:
                    self.session_line(session, kind, value)
            else:
                self.media_attr_line(media, kind, value)
        if origin is None:
            raise SdpParseError("missing o= line")
        session.origin = origin
        session.session_name = session_name if session_name is not None else "-"
        session.version = version or 0
        return session

    def origin_line(self, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise self.fail(f"o= needs 6 fields, got {len(parts)}")
        if not parts[1].isdigit() or not parts[2].isdigit():
            raise self.fail("o= session id and version must be numeric")
        return Origin(parts[0], int(parts[1]), int(parts[2]), parts[5], parts[3], parts[4])

    def connection_line(self, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise self.fail(f"c= needs 3 fields, got {len(parts)}")
        return Connection(parts[2], parts[1], parts[0])

    def attribute_line(self, value: str) -> Attribute:
        name, sep, rest = value.partition(":")
        name = name.strip()
        if not name or " " in name:
            raise self.fail(f"malformed attribute {value!r}")
        if not sep:
            return Attribute(name)
        attribute = Attribute(name, rest.strip())
        if name.lower() == "rtpmap":
            try:
                RtpMap.parse(attribute.value or "")
            except SdpParseError as exc:
                raise self.fail(str(exc)) from None
        return attribute

    def session_line(self, session: SessionDescription, kind: str, value: str) -> None:
        if kind == "i":
            session.information = value
        elif kind == "u":
            session.uri = value
        elif kind == "e":
            session.emails.append(value)
        elif kind == "p":
            session.phones.append(value)
        elif kind == "c":
            session.connection = self.connection_line(value)
        elif kind == "b":
            session.bandwidths.append(value.strip())
        elif kind == "t":
            parts = value.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise self.fail(f"malformed t= {value!r}")
            session.times.append(Timing(int(parts[0]), int(parts[1])))
        elif kind == "r":
            if not session.times:
                raise self.fail("r= before any t=")
            session.times[-1].repeats.append(value)
        elif kind == "z":
            session.zone = value
        elif kind == "k":
            session.key = value
        elif kind == "a":
            session.attributes.append(self.attribute_line(value))
        else:
            session.extra_lines.append((kind, value))

    def media_line(self, value: str) -> MediaDescription:
        parts = value.split()
        if len(parts) < 3:
            raise self.fail(f"m= needs media, port and proto: {value!r}")
        port_text, _, count_text = parts[1].partition("/")
        if not port_text.isdigit() or int(port_text) > 65535 or (count_text and not count_text.isdigit()):
            raise self.fail(f"bad port {parts[1]!r}")
        media = MediaDescription(
            media=parts[0],
            port=int(port_text),
            proto=parts[2],
            formats=parts[3:],
            port_count=int(count_text) if count_text else None,
        )
        if media.is_rtp:
            try:
                for fmt in media.formats:
                    _payload_type(fmt)
            except SdpParseError as exc:
                raise self.fail(str(exc)) from None
        return media

    def media_attr_line(self, media: MediaDescription, kind: str, value: str) -> None:
        if kind == "i":
            media.title = value
        elif kind == "c":
            media.connections.append(self.connection_line(value))
        elif kind == "b":
            media.bandwidths.append(value.strip())
        elif kind == "k":
            media.key = value
        elif kind == "a":
            media.attributes.append(self.attribute_line(value))
        elif kind in "vosuepctrz":
            raise self.fail(f"{kind}= line inside a media section")
        else:
            media.extra_lines.append((kind, value))
