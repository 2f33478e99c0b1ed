"""Websocket frames in, whole messages out; whole binary frames written directly (RFC 6455 5.2).

Sans-I/O: :class:`FrameReader` takes the bytes a connection read and hands over
the messages in them; :class:`BinaryFrameWriter` returns the bytes of one binary
frame. Both work on either side of a connection (a client reads unmasked frames
and masks what it sends, a server the other way round): the gateway's agent
socket (:mod:`media.agent.websocket`) is a client, the benchmark's load agent a
server.

Why not websockets' own parser for everything: at 200 calls a side handles
10 000 audio frames a second, and websockets' generator-based parser costs
7.7 us a frame where the direct parse below costs about 2 us. So whole,
unfragmented text and binary frames are parsed here; everything else (the
handshake, control frames, fragments, reserved bits, and what must be refused)
goes through websockets' protocol, one whole frame at a time so that its parser
always stands at a frame boundary. A frame websockets must refuse (masked the
wrong way, over ``max_size``) goes to it with the rest of the stream, which the
connection does not survive. ``tests/unit/agent/test_agent_frames.py`` checks
both paths against each other on every kind of frame and any read size.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from typing import Final

from websockets.frames import Frame, Opcode
from websockets.protocol import Event, Protocol, Side, State

try:  # websockets' C masking, as its own frames use; its pure-Python twin otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = ["BinaryFrameWriter", "FrameReader", "Message", "parser_buffer"]

log = logging.getLogger("media.agent.frames")

# A whole message: text, binary, or None for text that is not valid UTF-8.
Message = str | bytes | None

_HEAD_SHORT: Final = struct.Struct("!BB")
_HEAD_16: Final = struct.Struct("!BBH")
_HEAD_64: Final = struct.Struct("!BBQ")
_MASK_POOL_BYTES: Final = 4096
_OPEN: Final = State.OPEN


def parser_buffer(proto: Protocol) -> int:
    """Bytes waiting in the protocol's frame parser; -1 when that cannot be told."""
    buffer = getattr(getattr(proto, "reader", None), "buffer", None)
    return len(buffer) if isinstance(buffer, (bytes, bytearray)) else -1


class FrameReader:
    """Reads one connection's byte stream: messages to ``on_text`` and ``on_binary``,
    the rest to ``on_events``.

    ``on_text`` gets a text message as ``str`` (None when it is not UTF-8),
    ``on_binary`` a binary one as ``bytes``; both may be replaced at any time (an
    owner attaches its handlers that way), and an exception from them is logged
    and the stream goes on. ``on_events(events)`` gets, after every hand-off to
    websockets' protocol, the events it produced: the owner acts on the handshake
    and the control frames, and writes what the protocol has to send. It must not
    raise. The data frames among those events are assembled into messages here.
    """

    def __init__(
        self,
        proto: Protocol,
        *,
        max_size: int,
        on_text: Callable[[str | None], None],
        on_binary: Callable[[bytes], None],
        on_events: Callable[[list[Event]], None],
    ) -> None:
        self.proto = proto
        self.on_text = on_text
        self.on_binary = on_binary
        self._max_size = max_size
        self._on_events = on_events
        # A server reads masked frames, a client unmasked ones (RFC 6455 5.1).
        self._key_len = 4 if proto.side is Side.SERVER else 0
        self._mask_bit = 0x80 if self._key_len else 0
        self._fast = False  # frames parsed by _receive_fast
        self._rx = bytearray()  # its unparsed bytes: the start of a frame
        self._fragments: list[bytes] = []
        self._fragment_text = False

    @property
    def fast(self) -> bool:
        """True while data frames are parsed here rather than by websockets."""
        return self._fast

    def receive(self, data: bytes) -> None:
        if not self._fast:
            self._handoff(data)
            return
        # The fast path, inline: this runs for every read of every connection.
        rx = self._rx
        if rx:
            rx += data  # the rest of a frame that began in an earlier read
            buf: bytes | bytearray = rx
        else:
            buf = data
        n = len(buf)
        pos = 0
        key_len = self._key_len
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length >= 126:
                head = 4 if length == 126 else 10
                if n - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + head], "big")
            if b1 & 0x80 != self._mask_bit or length > self._max_size:
                self._fast = False
                self._rx = bytearray()
                self._handoff(bytes(buf[pos:]))
                return
            start = pos + head + key_len
            end = start + length
            if end > n:
                break
            # 0x82 and 0x81: FIN set, binary or text (literals: this runs once per frame).
            if (b0 == 0x82 or b0 == 0x81) and not self._fragments and self.proto.state is _OPEN:
                if key_len:
                    payload = apply_mask(buf[start:end], buf[pos + head : start])
                elif buf is rx:
                    payload = bytes(rx[start:end])
                else:
                    payload = data[start:end]  # bytes already: no copy to make
                if b0 == 0x82:  # audio: handed over here, one call less
                    try:
                        self.on_binary(payload)
                    except Exception:
                        log.exception("websocket message handler failed")
                else:
                    self._deliver(True, payload)
            else:
                self._handoff(bytes(buf[pos:end]))
                if not self._fast:
                    self._rx = bytearray()
                    if end < n:
                        self._handoff(bytes(buf[end:]))
                    return
            pos = end
        if buf is rx:
            del rx[:pos]
        elif pos < n:
            self._rx = bytearray(buf[pos:])

    def _handoff(self, data: bytes) -> None:
        """Bytes for websockets' protocol: the handshake, then what the fast path hands over."""
        proto = self.proto
        proto.receive_data(data)
        events = proto.events_received()
        self._on_events(events)
        for event in events:
            if isinstance(event, Frame):
                self._on_frame(event)
        # Frames are parsed here only while the protocol's parser holds no partial frame.
        self._fast = proto.state is _OPEN and not parser_buffer(proto)

    def _on_frame(self, frame: Frame) -> None:
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if frame.fin:
                self._deliver(op is Opcode.TEXT, frame.data)
            else:
                self._fragment_text = op is Opcode.TEXT
                self._fragments = [bytes(frame.data)]
        elif op is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._deliver(self._fragment_text, data)

    def _deliver(self, text: bool, data: bytes | bytearray | memoryview) -> None:
        try:
            if not text:
                self.on_binary(bytes(data))
                return
            try:
                msg: str | None = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                msg = None
            self.on_text(msg)
        except Exception:
            log.exception("websocket message handler failed")


class BinaryFrameWriter:
    """One whole, unfragmented binary frame per call (RFC 6455 5.2): masked when a client sends.

    websockets' protocol object keeps no state for whole data frames, and
    compression is never negotiated, so these can be written straight to the
    transport beside what the protocol writes.
    """

    def __init__(self, *, masked: bool) -> None:
        self._masked = masked
        self._mask_pool = b""
        self._mask_pos = 0

    def frame(self, payload: bytes) -> bytes:
        n = len(payload)
        if not self._masked:
            if n < 126:
                return _HEAD_SHORT.pack(0x82, n) + payload
            if n < 65536:
                return _HEAD_16.pack(0x82, 126, n) + payload
            return _HEAD_64.pack(0x82, 127, n) + payload
        if n < 126:
            head = _HEAD_SHORT.pack(0x82, 0x80 | n)
        elif n < 65536:
            head = _HEAD_16.pack(0x82, 0x80 | 126, n)
        else:
            head = _HEAD_64.pack(0x82, 0x80 | 127, n)
        pos = self._mask_pos
        if pos + 4 > len(self._mask_pool):
            self._mask_pool = os.urandom(_MASK_POOL_BYTES)  # masking keys from a strong source
            pos = 0
        mask = self._mask_pool[pos : pos + 4]
        self._mask_pos = pos + 4
        return b"".join((head, mask, apply_mask(payload, mask)))
