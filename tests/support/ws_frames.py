"""A websocket conversation with every kind of frame, and what a reader must make of it
(shared by the frame reader's and the agent socket's tests)."""

from __future__ import annotations

from websockets.protocol import Protocol


def conversation(sender: Protocol) -> bytes:
    """Every kind of frame a peer sends, with all three length encodings."""
    sender.send_binary(bytes(range(256)) * 2 + b"\x01\x02")  # 514 bytes: 16-bit length
    sender.send_text(b'{"event":"mark","name":"a"}')  # 7-bit length
    sender.send_ping(b"keepalive")
    sender.send_binary(b"\x05" * 70_000)  # 64-bit length
    sender.send_binary(b"first ", fin=False)  # a fragmented message
    sender.send_ping(b"between fragments")
    sender.send_continuation(b"second ", fin=False)
    sender.send_continuation(b"third", fin=True)
    sender.send_text("caf\u00e9".encode(), fin=True)
    sender.send_binary(b"")  # empty frame
    sender.send_text(b"\xff\xfe")  # not UTF-8: handed over as None
    sender.send_binary(b"\x07" * 320)
    return b"".join(sender.data_to_send())


EXPECTED: list[str | bytes | None] = [
    bytes(range(256)) * 2 + b"\x01\x02",
    '{"event":"mark","name":"a"}',
    b"\x05" * 70_000,
    b"first second third",
    "caf\u00e9",
    b"",
    None,
    b"\x07" * 320,
]
