"""AgentSocket, the agent connection, against websockets' own server protocol, in memory.

Data frames are parsed by its FrameReader; everything else goes through websockets'
ClientProtocol. Each stream below is also run with that fast path off (every byte through
websockets), and both must deliver the same messages and write the same bytes back.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from media.agent import frames as frames_module
from media.agent.websocket import AgentSocket, SocketOptions
from tests.support.ws_frames import EXPECTED, conversation

MAX_SIZE = 1 << 17


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Peer:
    """A client connection and the server protocol at the other end of it."""

    def __init__(self) -> None:
        self.sock = AgentSocket(
            parse_uri("ws://agent.invalid/stream"),
            subprotocols=[Subprotocol("orbit-voice.v1")],
            headers={},
            options=SocketOptions(max_size=MAX_SIZE, ping_interval=None),
        )
        self.transport = Transport()
        self.received: list[str | bytes | None] = []
        self.sock.connection_made(self.transport)  # type: ignore[arg-type]
        self.server = ServerProtocol(subprotocols=[Subprotocol("orbit-voice.v1")], max_size=None)
        self.server.receive_data(self.take_written())
        (request,) = self.server.events_received()
        assert isinstance(request, Request)
        self.server.send_response(self.server.accept(request))

    def take_written(self) -> bytes:
        out = b"".join(self.transport.written)
        self.transport.written.clear()
        return out

    def attach(self) -> None:
        self.sock.attach(lambda sock, msg: self.received.append(msg), lambda sock: None)

    def server_bytes(self) -> bytes:
        return b"".join(self.server.data_to_send())


def _feed(peer: Peer, stream: bytes, rng: random.Random, max_chunk: int) -> None:
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, max_chunk)
        peer.sock.data_received(stream[pos : pos + step])
        pos += step


def _run(stream_of: Any, *, fast: bool, seed: int, max_chunk: int, monkeypatch: pytest.MonkeyPatch) -> Peer:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(frames_module, "parser_buffer", lambda proto: -1)
        peer = Peer()
        handshake = peer.server_bytes()
        peer.attach()
        stream = handshake + stream_of(peer.server)
        _feed(peer, stream, random.Random(seed), max_chunk)
        return peer




@pytest.mark.parametrize("max_chunk", [1, 7, 600, 100_000])
@pytest.mark.parametrize("seed", [1, 2])
async def test_messages_and_replies_are_those_of_websockets_own_parser(
    max_chunk: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _run(conversation, fast=True, seed=seed, max_chunk=max_chunk, monkeypatch=monkeypatch)
    slow = _run(conversation, fast=False, seed=seed, max_chunk=max_chunk, monkeypatch=monkeypatch)
    assert fast.received == EXPECTED
    assert slow.received == EXPECTED
    # The pongs went back, the same bytes but for the masking keys: read them as the agent would.
    for peer in (fast, slow):
        peer.server.receive_data(peer.take_written())
        pongs = [e for e in peer.server.events_received() if isinstance(e, Frame)]
        assert [(f.opcode, bytes(f.data)) for f in pongs] == [
            (Opcode.PONG, b"keepalive"),
            (Opcode.PONG, b"between fragments"),
        ]
    assert fast.sock.is_open and fast.sock.error is None


async def test_frames_that_came_with_the_handshake_response_are_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    peer = Peer()
    peer.server.send_binary(b"\x01" * 400)
    peer.server.send_binary(b"\x02" * 400)
    data = peer.server_bytes()
    cut = len(data) - 100  # the response, one frame and part of the next in one read
    peer.sock.data_received(data[:cut])
    peer.attach()
    peer.sock.data_received(data[cut:])
    peer.server.send_binary(b"\x03" * 400)
    peer.sock.data_received(peer.server_bytes())
    assert peer.received == [b"\x01" * 400, b"\x02" * 400, b"\x03" * 400]


def _masked(server: ServerProtocol) -> bytes:
    server.send_binary(b"\x01" * 10)
    ok = b"".join(server.data_to_send())
    # A server must not mask its frames (RFC 6455 5.1).
    masked = Frame(Opcode.BINARY, b"\x02" * 10).serialize(mask=True, extensions=[])
    server.send_binary(b"\x03" * 10)
    return ok + masked + b"".join(server.data_to_send())


def _oversized(server: ServerProtocol) -> bytes:
    server.send_binary(b"\x01" * 10)
    server.send_binary(b"\x02" * (MAX_SIZE + 1))
    return b"".join(server.data_to_send())


def _reserved_bit(server: ServerProtocol) -> bytes:
    server.send_binary(b"\x01" * 10)
    ok = b"".join(server.data_to_send())
    bad = bytearray(Frame(Opcode.BINARY, b"\x02" * 10).serialize(mask=False, extensions=[]))
    bad[0] |= 0x40  # RSV1 without a negotiated extension
    return ok + bytes(bad)


def _interleaved(server: ServerProtocol) -> bytes:
    server.send_binary(b"\x01" * 10)
    server.send_binary(b"part", fin=False)
    ok = b"".join(server.data_to_send())
    # A whole message inside a fragmented one (RFC 6455 5.4 allows only control frames there).
    inside = Frame(Opcode.BINARY, b"\x02" * 10).serialize(mask=False, extensions=[])
    return ok + inside


def _close(server: ServerProtocol) -> bytes:
    server.send_binary(b"\x01" * 10)
    server.send_close(1000, "bye")
    return b"".join(server.data_to_send())


@pytest.mark.parametrize(
    ("stream_of", "code", "oversized"),
    [
        (_masked, 1002, False),
        (_oversized, 1009, True),
        (_reserved_bit, 1002, False),
        (_interleaved, 1002, False),
        (_close, 1000, False),
    ],
)
@pytest.mark.parametrize("max_chunk", [3, 100_000])
async def test_what_websockets_refuses_or_closes_ends_the_connection_the_same_way(
    stream_of: Any, code: int, oversized: bool, max_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for fast in (True, False):
        peer = _run(stream_of, fast=fast, seed=3, max_chunk=max_chunk, monkeypatch=monkeypatch)
        assert peer.received == [b"\x01" * 10], fast
        assert peer.sock._proto.state is not State.OPEN
        assert peer.sock.oversized is oversized
        peer.server.receive_data(peer.take_written())
        closes = [e for e in peer.server.events_received() if isinstance(e, Frame) and e.opcode is Opcode.CLOSE]
        assert closes, fast
        assert peer.server.close_rcvd is not None and peer.server.close_rcvd.code == code, fast


async def test_audio_goes_out_as_masked_binary_frames_and_text_through_the_protocol() -> None:
    peer = Peer()
    peer.sock.data_received(peer.server_bytes())
    assert peer.sock.is_open
    payloads = [bytes(320), bytes(range(200)), b"\x09" * 640, b"\x0a" * 70_000]
    for payload in payloads:
        assert peer.sock.send(payload)
    assert peer.sock.send('{"type":"start"}')
    wire = peer.take_written()
    peer.server.receive_data(wire)
    frames = [e for e in peer.server.events_received() if isinstance(e, Frame)]
    assert [(f.opcode, bytes(f.data)) for f in frames] == [(Opcode.BINARY, p) for p in payloads] + [
        (Opcode.TEXT, b'{"type":"start"}')
    ]
    assert payloads[1] not in wire  # masked on the wire (RFC 6455 5.3)
    peer.sock.close(1000)
    assert not peer.sock.send(bytes(320))  # nothing goes out once the closing handshake began
