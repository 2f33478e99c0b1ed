"""FrameReader and BinaryFrameWriter on both sides of a connection, without sockets or a loop.

A client reads what websockets' ServerProtocol writes (the gateway's agent socket); a server
reads what its ClientProtocol writes (the benchmark's load agent). Every stream is read with
the fast path on and off (every byte through websockets): both must hand over the same
messages and leave the protocol in the same state.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, Protocol, State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from media.agent import frames as frames_module
from media.agent.frames import BinaryFrameWriter, FrameReader
from tests.support.ws_frames import EXPECTED, conversation

MAX_SIZE = 1 << 17
URI = parse_uri("ws://agent.invalid/stream")


class Side:
    """One end's protocol and reader, and what reached its owner (a server accepts the handshake
    as soon as it reads it, as the load agent does)."""

    def __init__(self, proto: Protocol) -> None:
        self.proto = proto
        self.messages: list[str | bytes | None] = []
        self.events: list[Event] = []
        self.reader = FrameReader(
            proto,
            max_size=MAX_SIZE,
            on_text=self.messages.append,
            on_binary=self.messages.append,
            on_events=self.on_events,
        )

    def on_events(self, events: list[Event]) -> None:
        self.events += events
        for event in events:
            if isinstance(event, Request) and isinstance(self.proto, ServerProtocol):
                self.proto.send_response(self.proto.accept(event))


def opened_pair() -> tuple[Side, Side]:
    """A client and a server side past the handshake, each reading through its FrameReader."""
    client = Side(ClientProtocol(URI, max_size=MAX_SIZE))
    server = Side(ServerProtocol(max_size=MAX_SIZE))
    client.proto.send_request(client.proto.connect())  # type: ignore[attr-defined]
    server.reader.receive(b"".join(client.proto.data_to_send()))
    assert isinstance(server.events[0], Request)
    client.reader.receive(b"".join(server.proto.data_to_send()))
    assert isinstance(client.events[0], Response)
    assert client.proto.state is State.OPEN and server.proto.state is State.OPEN
    return client, server




def feed(reader: FrameReader, stream: bytes, seed: int, max_chunk: int) -> None:
    rng = random.Random(seed)
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, max_chunk)
        reader.receive(stream[pos : pos + step])
        pos += step


def read_as(side: str, stream_of: Callable[[Protocol], bytes], *, fast: bool, seed: int, max_chunk: int) -> Side:
    """``side`` ("client" or "server") reads the stream its peer writes."""
    with pytest.MonkeyPatch.context() as m:
        if not fast:
            m.setattr(frames_module, "parser_buffer", lambda proto: -1)
        client, server = opened_pair()
        reading, writing = (client, server) if side == "client" else (server, client)
        reading.events.clear()
        feed(reading.reader, stream_of(writing.proto), seed, max_chunk)
        return reading


def control_frames(side: Side) -> list[tuple[Opcode, bytes]]:
    return [(e.opcode, bytes(e.data)) for e in side.events if isinstance(e, Frame) and e.opcode.value >= 8]


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("max_chunk", [1, 7, 600, 100_000])
@pytest.mark.parametrize("seed", [1, 2])
def test_messages_are_those_of_websockets_own_parser(side: str, max_chunk: int, seed: int) -> None:
    fast = read_as(side, conversation, fast=True, seed=seed, max_chunk=max_chunk)
    slow = read_as(side, conversation, fast=False, seed=seed, max_chunk=max_chunk)
    assert fast.messages == EXPECTED
    assert slow.messages == EXPECTED
    # The pings went to the owner as events, both times.
    for reading in (fast, slow):
        assert control_frames(reading) == [(Opcode.PING, b"keepalive"), (Opcode.PING, b"between fragments")]
    # And the protocol answered them: the same pongs wait to be sent.
    assert [len(d) for d in fast.proto.data_to_send()] == [len(d) for d in slow.proto.data_to_send()]
    assert fast.proto.state is State.OPEN and fast.reader.fast and not slow.reader.fast


def wrongly_masked(sender: Protocol) -> bytes:
    sender.send_binary(b"\x01" * 10)
    ok = b"".join(sender.data_to_send())
    # Masked the other way round: a client must mask, a server must not (RFC 6455 5.1).
    bad = Frame(Opcode.BINARY, b"\x02" * 10).serialize(mask=isinstance(sender, ServerProtocol), extensions=[])
    sender.send_binary(b"\x03" * 10)
    return ok + bad + b"".join(sender.data_to_send())


def oversized(sender: Protocol) -> bytes:
    sender.send_binary(b"\x01" * 10)
    sender.send_binary(b"\x02" * (MAX_SIZE + 1))
    return b"".join(sender.data_to_send())


def reserved_bit(sender: Protocol) -> bytes:
    sender.send_binary(b"\x01" * 10)
    ok = b"".join(sender.data_to_send())
    bad = bytearray(Frame(Opcode.BINARY, b"\x02" * 10).serialize(mask=isinstance(sender, ClientProtocol), extensions=[]))
    bad[0] |= 0x40  # RSV1 without a negotiated extension
    return ok + bytes(bad)


def data_inside_a_fragmented_message(sender: Protocol) -> bytes:
    sender.send_binary(b"\x01" * 10)
    sender.send_binary(b"part", fin=False)
    ok = b"".join(sender.data_to_send())
    # RFC 6455 5.4 allows only control frames between fragments.
    inside = Frame(Opcode.BINARY, b"\x02" * 10).serialize(mask=isinstance(sender, ClientProtocol), extensions=[])
    return ok + inside


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize(
    ("stream_of", "code"),
    [(wrongly_masked, 1002), (oversized, 1009), (reserved_bit, 1002), (data_inside_a_fragmented_message, 1002)],
)
@pytest.mark.parametrize("max_chunk", [3, 100_000])
def test_what_websockets_must_refuse_goes_to_it_and_fails_the_same_way(
    side: str, stream_of: Callable[[Protocol], bytes], code: int, max_chunk: int
) -> None:
    for fast in (True, False):
        reading = read_as(side, stream_of, fast=fast, seed=3, max_chunk=max_chunk)
        assert reading.messages == [b"\x01" * 10], fast
        assert reading.proto.state is State.CLOSING, fast
        assert reading.proto.close_sent is not None and reading.proto.close_sent.code == code, fast
        assert not reading.reader.fast


@pytest.mark.parametrize("size", [0, 125, 126, 640, 65535, 65536, 70_000])
def test_written_frames_read_back_on_the_other_side(size: int) -> None:
    client, server = opened_pair()
    assert client.reader.fast and server.reader.fast  # both past the handshake in one read
    payload = bytes(i % 251 for i in range(size))
    client_frames = BinaryFrameWriter(masked=True)
    server.reader.receive(client_frames.frame(payload) + client_frames.frame(payload))
    client.reader.receive(BinaryFrameWriter(masked=False).frame(payload))
    assert server.messages == [payload, payload]
    assert client.messages == [payload]
    assert server.reader.fast and client.reader.fast


def test_masking_keys_differ_from_frame_to_frame() -> None:
    writer = BinaryFrameWriter(masked=True)
    keys = {writer.frame(bytes(320))[4:8] for _ in range(2000)}  # the pool is refilled on the way
    assert len(keys) > 1990


def test_a_frame_split_across_reads_is_kept_until_it_is_whole() -> None:
    client, server = opened_pair()
    server.proto.send_binary(b"\x01" * 400)
    server.proto.send_binary(b"\x02" * 400)
    data = b"".join(server.proto.data_to_send())
    client.reader.receive(data[:3])  # not even the length yet
    assert client.messages == []
    client.reader.receive(data[3:500])  # the first frame (404 bytes) and the start of the second
    assert client.messages == [b"\x01" * 400]
    client.reader.receive(data[500:])
    assert client.messages == [b"\x01" * 400, b"\x02" * 400]
    assert client.reader.fast


def test_a_failing_handler_does_not_stop_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    client, server = opened_pair()
    got: list[bytes] = []

    def handler(msg: bytes) -> None:
        got.append(msg)
        if len(got) == 1:
            raise RuntimeError("handler bug")

    client.reader.on_binary = handler
    for n in (1, 2):
        server.proto.send_binary(bytes([n]) * 10)
    client.reader.receive(b"".join(server.proto.data_to_send()))
    assert got == [b"\x01" * 10, b"\x02" * 10]
    assert "websocket message handler failed" in caplog.text
