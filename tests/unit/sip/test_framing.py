"""StreamFramer: Content-Length framing of TCP/TLS byte streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.errors import SipContentLengthError, SipFramingError, SipMessageTooLargeError
from gateway.sip.framing import StreamFramer
from gateway.sip.message import parse_message


def message(call_id: str, body: bytes = b"", compact: bool = False) -> bytes:
    length = b"l" if compact else b"Content-Length"
    return (
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK" + call_id.encode() + b"\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: " + call_id.encode() + b"\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"Content-Type: text/plain\r\n" + length + b": " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


M1 = message("one", b"hello\r\n\r\nworld")  # body contains a blank line
M2 = message("two")
M3 = message("three", b"x" * 500, compact=True)


def test_single_message_in_one_chunk() -> None:
    framer = StreamFramer()
    assert framer.feed(M1) == [M1]
    assert framer.buffered == 0
    assert parse_message(M1).body == b"hello\r\n\r\nworld"


def test_concatenated_messages_in_one_chunk() -> None:
    assert StreamFramer().feed(M1 + M2 + M3) == [M1, M2, M3]


def test_byte_at_a_time() -> None:
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(M1 + M2)):
        out += framer.feed((M1 + M2)[i : i + 1])
    assert out == [M1, M2]


def test_split_inside_header_terminator_and_body() -> None:
    framer = StreamFramer()
    end_of_headers = M3.index(b"\r\n\r\n")
    assert framer.feed(M3[: end_of_headers + 2]) == []
    assert framer.feed(M3[end_of_headers + 2 : end_of_headers + 3]) == []
    assert framer.feed(M3[end_of_headers + 3 : -1]) == []
    assert framer.buffered == len(M3) - 1
    assert framer.feed(M3[-1:] + M2[:10]) == [M3]
    assert framer.feed(M2[10:]) == [M2]


def test_keepalives_are_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.buffered == 0
    assert framer.feed(b"\r\n\r\n" + M1 + b"\r\n" + M2 + b"\r\n\r\n") == [M1, M2]
    assert framer.feed(b"\r\n") == [] and framer.buffered == 0


def test_missing_content_length_is_fatal() -> None:
    no_length = M2.replace(b"Content-Length: 0\r\n", b"")
    framer = StreamFramer()
    with pytest.raises(SipContentLengthError) as info:
        framer.feed(no_length)
    assert info.value.header == "Content-Length"
    assert info.value.head == no_length  # the request can still be answered (400)
    with pytest.raises(SipContentLengthError):
        framer.feed(M1)  # the connection is unusable from now on
    assert isinstance(framer.error, SipFramingError)


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1 2", b"", b"0x10", b"99999999999"])
def test_invalid_content_length_is_fatal(value: bytes) -> None:
    bad = M2.replace(b"Content-Length: 0", b"Content-Length: " + value)
    with pytest.raises(SipContentLengthError):
        StreamFramer().feed(bad)


def test_duplicate_content_length_is_fatal() -> None:
    bad = M2.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0")
    with pytest.raises(SipContentLengthError):
        StreamFramer().feed(bad)


def test_messages_before_an_error_are_returned_first() -> None:
    framer = StreamFramer()
    bad = M2.replace(b"Content-Length: 0\r\n", b"")
    assert framer.feed(M1 + bad) == [M1]
    assert isinstance(framer.error, SipContentLengthError)
    with pytest.raises(SipContentLengthError):
        framer.feed(b"")


def test_oversized_declared_body() -> None:
    framer = StreamFramer(max_message_size=400)
    with pytest.raises(SipMessageTooLargeError) as info:
        framer.feed(M3)
    assert info.value.status == 513
    assert info.value.head == M3[: M3.index(b"\r\n\r\n") + 4]  # headers only, for the 513


def test_oversized_header_section_without_terminator() -> None:
    framer = StreamFramer(max_message_size=1024)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    with pytest.raises(SipMessageTooLargeError) as info:
        for _ in range(100):
            framer.feed(b"X-Filler: " + b"a" * 30 + b"\r\n")
    head = info.value.head
    assert head is not None and head.startswith(b"INVITE sip:a@b SIP/2.0\r\n")
    assert len(head) <= 1024 and head.endswith(b"a\r\n")  # whole lines, within the limit


def test_default_limit_is_64k() -> None:
    big = message("big", b"y" * (64 * 1024))
    with pytest.raises(SipMessageTooLargeError):
        StreamFramer().feed(big)
    fits = message("fits", b"y" * (60 * 1024))
    assert StreamFramer().feed(fits) == [fits]


def test_lf_only_header_terminator() -> None:
    lf = M1.replace(b"\r\n\r\nhello", b"\n\nhello")
    assert StreamFramer().feed(lf) == [lf]


@settings(max_examples=200, deadline=None)
@given(
    order=st.lists(st.sampled_from([M1, M2, M3]), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 200), min_size=1, max_size=40),
)
def test_any_chunking_yields_the_same_messages(order: list[bytes], cuts: list[int]) -> None:
    stream = b"\r\n\r\n".join(order)
    framer = StreamFramer()
    out: list[bytes] = []
    pos = 0
    for size in cuts * (len(stream) // sum(cuts) + 1):
        if pos >= len(stream):
            break
        out += framer.feed(stream[pos : pos + size])
        pos += size
    assert out == order
    assert framer.buffered == 0
