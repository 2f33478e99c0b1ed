"""Mutation fuzzing: whatever the bytes, the parser either succeeds or raises SipParseError,
and the cheap Call-ID peek agrees with the parser on every message the parser accepts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.errors import SipParseError
from gateway.sip.framing import StreamFramer
from gateway.sip.headers import NameAddr, Via
from gateway.sip.message import parse_message, peek_call_id
from gateway.sip.uri import SipUri

CORPUS = Path(__file__).parent / "corpus" / "torture"
# Seeds without <hex> notation, so the raw text is the message once LF becomes CRLF.
SEED_NAMES = [
    "valid-folded-headers",
    "valid-escaped-uri-chars",
    "valid-escaped-nul-in-uri",
    "valid-percent-not-escape-in-tokens",
    "valid-quoted-separators",
    "valid-semicolon-in-user-part",
    "valid-unknown-transports",
    "valid-utf8-reason-phrase",
    "semantic-rfc2543-request",
]
EXTRA_SEEDS = [
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport=5060;received=192.0.2.1\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b'From: "A, B" <sip:a@example.com>;tag=1\r\n'
    b"To: <sip:b@example.com>;tag=2\r\n"
    b"Call-ID: x@y\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:b@192.0.2.9:5080;transport=tcp>;expires=60\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 3\r\n\r\nv=0",
]
SEEDS = [(CORPUS / f"{n}.txt").read_bytes().replace(b"\n", b"\r\n") for n in SEED_NAMES] + EXTRA_SEEDS

INTERESTING = [
    b"\r\n",
    b"\r\n ",
    b"\n",
    b"\r",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"%0",
    b"@",
    b"[",
    b"]",
    b"=",
    b"?",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"SIP/2.0",
    b"z9hG4bK",
    b"Content-Length: 99\r\n",
    b"l: -1\r\n",
    b"9" * 30,
]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, len(INTERESTING) - 1)),
    st.tuples(st.just("random"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000), st.integers(1, 80)),
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in ops:
        pos = pos % (len(buf) + 1)
        if kind == "flip" and buf:
            buf[pos % len(buf)] = arg
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = INTERESTING[arg]
        elif kind == "random":
            buf[pos:pos] = bytes([arg])
        elif kind == "delete":
            del buf[pos : pos + arg]
        elif kind == "duplicate":
            buf[pos:pos] = buf[pos : pos + arg]
    return bytes(buf)


def exercise_accessors(msg: object) -> None:
    from gateway.sip.message import SipMessage

    assert isinstance(msg, SipMessage)
    msg.vias
    msg.from_
    msg.to
    msg.cseq
    msg.call_id
    msg.contacts
    msg.route
    msg.record_route
    msg.max_forwards
    msg.content_type


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_messages_only_raise_parse_errors(seed: bytes, ops: list[tuple[str, int, int]]) -> None:
    data = mutate(seed, ops)
    peeked = peek_call_id(data)
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    assert peeked == msg.call_id  # the trust check before parsing never loses one of our messages
    exercise_accessors(msg)
    # anything accepted must serialise to something that parses back to the same message
    again = parse_message(bytes(msg))
    assert again == msg


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_parse_errors(data: bytes) -> None:
    peeked = peek_call_id(data)
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    assert peeked == msg.call_id


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='sip:@;=?&%<>[]:,"\\ abc12.+-/~*', max_size=40))
def test_header_value_parsers_only_raise_parse_errors(text: str) -> None:
    for parse in (SipUri.parse, NameAddr.parse, Via.parse):
        try:
            parse(text)
        except SipParseError:
            pass


@settings(max_examples=300, deadline=None)
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=3), cut=st.integers(1, 50))
def test_framer_only_raises_parse_errors(seed: bytes, ops: list[tuple[str, int, int]], cut: int) -> None:
    data = mutate(seed, ops)
    framer = StreamFramer(max_message_size=4096)
    try:
        for i in range(0, len(data), cut):
            for frame in framer.feed(data[i : i + cut]):
                try:
                    parse_message(frame)
                except SipParseError:
                    pass
    except SipParseError:
        pass
