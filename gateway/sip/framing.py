"""Splitting a SIP byte stream (TCP/TLS) into messages by Content-Length (RFC 3261 18.3, RFC 5626 4.4.1).

Public API
----------
``StreamFramer(max_message_size=65536)``
    ``feed(data: bytes) -> list[bytes]`` appends received octets and returns
    every complete message (start line, headers, blank line and exactly
    Content-Length octets of body) now available, in order. CR/LF octets
    between messages - including RFC 5626 ``CRLFCRLF`` keep-alive pings - are
    skipped. Frames are handed to ``gateway.sip.message.parse_message``; a
    parse error there concerns one message only, the stream stays in sync.

    ``feed`` raises when the stream cannot be framed and keeps raising on
    later calls; the transport must then close the connection. If messages
    were completed earlier in the same ``feed`` call they are returned first
    and the error is raised by the next call (``error`` already holds it):

    * ``SipContentLengthError`` - Content-Length missing, repeated, or not a
      non-negative decimal integer;
    * ``SipMessageTooLargeError`` - headers not terminated within
      ``max_message_size`` octets, or headers plus declared body larger than it.

    ``buffered -> int`` octets held for an incomplete message;
    ``error -> SipFramingError | None`` once the stream is unusable. Its ``head`` is
    the header section of the message the stream broke on (at most
    ``max_message_size`` octets, cut at a line end when it never ended), so that
    the request can still be answered before the connection is closed.
"""

from __future__ import annotations

from gateway.sip.errors import SipContentLengthError, SipFramingError, SipMessageTooLargeError

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "StreamFramer"]

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024

_TERMINATORS = ((b"\r\n\r\n", 4), (b"\n\n", 2), (b"\n\r\n", 3))


def _content_length(header_block: bytes) -> int:
    values: list[bytes] = []
    in_length = False  # the previous field line was a Content-Length header
    for line in header_block.split(b"\n")[1:]:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if in_length:
                # a continuation of the Content-Length value (folding), not of another header
                values[-1] += b" " + line
            continue
        name, colon, value = line.partition(b":")
        in_length = bool(colon) and name.rstrip(b" \t").lower() in (b"content-length", b"l")
        if in_length:
            values.append(value)
    if not values:
        raise SipContentLengthError("missing Content-Length on a stream transport", header="Content-Length")
    if len(values) > 1:
        raise SipContentLengthError("more than one Content-Length", header="Content-Length")
    text = values[0].strip(b" \t")
    if not text.isdigit() or len(text) > 10:
        raise SipContentLengthError(f"invalid Content-Length {text!r}", header="Content-Length")
    return int(text)


class StreamFramer:
    """Incremental Content-Length framer for one connection; see the module docstring."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size <= 0:
            raise ValueError("max_message_size must be positive")
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._scan = 0  # where the search for the end of headers resumes
        self._frame_len: int | None = None  # total length once the headers are known
        self._error: SipFramingError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def error(self) -> SipFramingError | None:
        return self._error

    def _fail(self, error: SipFramingError, head_end: int | None) -> None:
        """``head_end``: where the header section ends, None when it never ended."""
        if head_end is not None and head_end <= self.max_message_size:
            head = bytes(self._buf[:head_end])
        else:
            head = bytes(self._buf[: self.max_message_size])
            head = head[: head.rfind(b"\n") + 1]  # whole lines only
        error.head = head or None
        self._error = error
        self._buf.clear()
        self._frame_len = None

    def _find_header_end(self) -> int:
        best = -1
        for pattern, size in _TERMINATORS:
            idx = self._buf.find(pattern, self._scan)
            if idx >= 0 and (best < 0 or idx + size < best):
                best = idx + size
        return best

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buf += data
        frames: list[bytes] = []
        while True:
            if self._frame_len is None:
                skip = 0
                while skip < len(self._buf) and self._buf[skip] in b"\r\n":
                    skip += 1
                if skip:
                    del self._buf[:skip]
                    self._scan = 0
                if not self._buf:
                    break
                body_start = self._find_header_end()
                if body_start < 0:
                    if len(self._buf) > self.max_message_size:
                        self._fail(SipMessageTooLargeError("header section too large"), None)
                    self._scan = max(0, len(self._buf) - 3)
                    break
                try:
                    length = _content_length(bytes(self._buf[:body_start]))
                except SipFramingError as exc:
                    self._fail(exc, body_start)
                    break
                if body_start + length > self.max_message_size:
                    self._fail(
                        SipMessageTooLargeError(
                            f"message of {body_start + length} octets exceeds {self.max_message_size}"
                        ),
                        body_start,
                    )
                    break
                self._frame_len = body_start + length
            if len(self._buf) < self._frame_len:
                break
            frames.append(bytes(self._buf[: self._frame_len]))
            del self._buf[: self._frame_len]
            self._frame_len = None
            self._scan = 0
        if self._error is not None and not frames:
            raise self._error
        return frames
