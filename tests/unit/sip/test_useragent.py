"""SipUserAgent: who may talk to us, stateless answers, many calls, and fuzzing receive()."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.outcome import HangupCause
from gateway.sip import useragent
from gateway.sip.errors import (
    SipContentLengthError,
    SipHeaderError,
    SipMessageTooLargeError,
    TransactionUsageError,
)
from gateway.sip.message import SipRequest, SipResponse, make_request, new_branch, parse_message
from gateway.sip.outbound_call import OutboundCall
from gateway.sip.uri import SipUri
from gateway.sip.useragent import (
    Answered,
    CallEvent,
    Ended,
    Released,
    SipUserAgent,
    Transmit,
    UaConfig,
    trust_nobody,
)
from tests.support.sip_errors import TYPED_ERROR_IDS, TYPED_ERRORS
from tests.support.sip_harness import (
    FAR,
    LOCAL_HOST,
    SCANNER,
    T1,
    TRUNK,
    TRUNK_IP,
    Harness,
    answer_sdp,
    make_params,
)


def outside_request(
    method: str, *, to_tag: str | None = None, call_id: str = "scan-1@192.0.2.66"
) -> SipRequest:
    to = f"<sip:100@{LOCAL_HOST}>" + (f";tag={to_tag}" if to_tag else "")
    return make_request(
        method,
        f"sip:100@{LOCAL_HOST}",
        from_="<sip:scanner@192.0.2.66>;tag=s1",
        to=to,
        call_id=call_id,
        cseq=1,
        via=f"SIP/2.0/UDP 192.0.2.66:5060;branch={new_branch()}",
        headers=[("User-Agent", "friendly-scanner")],
    )


# --------------------------------------------------------------------------- trust


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE", "REGISTER", "BYE", "CANCEL", "MESSAGE", "FOO"])
def test_untrusted_out_of_dialog_requests_are_dropped_silently(h: Harness, method: str) -> None:
    step = h.feed(outside_request(method), source=SCANNER)
    assert step.sent == [] and step.events == []
    assert h.ua.stats.dropped_untrusted == 1
    assert h.ua.next_deadline() is None and not h.ua.has_call("call_1")


@pytest.mark.parametrize(
    ("method", "status"),
    [("OPTIONS", 200), ("INVITE", 403), ("REGISTER", 405), ("BYE", 481), ("CANCEL", 481), ("FOO", 501)],
)
def test_trusted_out_of_dialog_requests_are_answered_statelessly(
    h: Harness, method: str, status: int
) -> None:
    request = outside_request(method)
    step = h.feed(request, source=(TRUNK_IP, 5099))
    [sent] = step.sent
    assert sent.destination == (TRUNK_IP, 5099) and sent.transport == "udp"  # back to the source (RFC 3581)
    response = sent.response
    assert response.status == status and response.call_id == request.call_id
    assert response.to_tag is not None
    if status == 200:
        assert response.headers.get_all("Allow")[0] == "INVITE" and response.header("Supported") == "timer"
        assert "application/sdp" in response.headers.get_all("Accept")
    if status == 405:
        assert response.header("Allow") is not None
    # the same request again: the same answer, same To tag, nothing kept
    again = h.feed(request, source=(TRUNK_IP, 5099)).sent[0].response
    assert again.to_tag == response.to_tag
    assert h.ua.next_deadline() is None


def test_trusted_ack_out_of_dialog_is_dropped(h: Harness) -> None:
    step = h.feed(outside_request("ACK", to_tag="x"), source=TRUNK)
    assert step.sent == [] and h.ua.stats.dropped_requests == 1


def test_unknown_dialog_gets_481_only_when_trusted(h: Harness) -> None:
    request = outside_request("BYE", to_tag="nope")
    assert h.feed(request, source=SCANNER).sent == []
    [sent] = h.feed(request, source=TRUNK).sent
    assert sent.response.status == 481 and sent.response.to_tag == "nope"
    assert h.ua.stats.answered_481 == 1 and h.ua.stats.dropped_untrusted == 1


def test_our_call_id_with_wrong_tags_is_an_unknown_dialog(h: Harness) -> None:
    h.answered_call()
    assert h.feed(h.request("BYE", 1, from_tag="impostor"), source=SCANNER).sent == []
    [sent] = h.feed(h.request("BYE", 1, from_tag="impostor"), source=TRUNK).sent
    assert sent.response.status == 481
    assert h.ua.active_calls() == 1


def test_in_dialog_requests_are_accepted_from_any_source(h: Harness) -> None:
    h.answered_call()
    step = h.feed(h.request("BYE", 1), source=SCANNER, transport="tcp")
    [sent] = step.sent
    assert sent.destination == SCANNER and sent.transport == "tcp" and sent.response.status == 200
    assert any(isinstance(e, Ended) for e in step.events)


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    parsed: list[bytes] = []

    def counting(data: bytes) -> SipRequest | SipResponse:
        parsed.append(data)
        return parse_message(data)

    monkeypatch.setattr(useragent, "parse_message", counting)
    return parsed


def test_untrusted_sources_cost_no_parse_unless_the_call_id_is_ours(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.answered_call()
    assert h.invite is not None
    parsed = _count_parses(monkeypatch)
    junk = [
        bytes(outside_request("INVITE")),
        bytes(outside_request("OPTIONS")),
        bytes(outside_request("BYE", to_tag="x")),
        bytes(h.respond(180)).replace(h.invite.call_id.encode(), b"someone-else@x"),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00",
    ]
    for data in junk:
        assert h.feed(data, source=SCANNER).sent == []
    assert parsed == []
    assert h.ua.stats.dropped_untrusted == len(junk) and h.ua.stats.parse_errors == 0
    # the same out-of-dialog request from a trunk is parsed and answered
    assert h.feed(junk[1], source=TRUNK).sent[0].response.status == 200
    assert parsed == [junk[1]]


def test_what_belongs_to_our_calls_is_parsed_from_any_source(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.place()
    parsed = _count_parses(monkeypatch)
    step = h.feed(h.respond(180), source=SCANNER)  # a response for our INVITE, from elsewhere
    assert step.kinds() == ["Ringing"]
    h.answer()
    bye = h.request("BYE", 1)
    step = h.feed(bye, source=SCANNER, transport="tcp")
    assert step.responses()[0].status == 200 and any(isinstance(e, Ended) for e in step.events)
    assert len(parsed) == 3 and parsed[-1] == bytes(bye)


def test_receive_says_whether_the_source_sent_valid_sip_it_may_send(h: Harness) -> None:
    h.answered_call()
    receive = h.ua.receive
    assert receive(bytes(outside_request("OPTIONS")), TRUNK, "tcp", h.now) is True
    assert receive(bytes(outside_request("OPTIONS")), SCANNER, "tcp", h.now) is False  # valid, but not to us
    assert receive(b"\r\n\r\n", TRUNK, "tcp", h.now) is False  # a keep-alive is no SIP message
    assert receive(b"OPTIONS sip:x SIP/2.0\r\n\r\n", TRUNK, "tcp", h.now) is False  # not valid
    assert receive(bytes(h.request("INFO", 1)), SCANNER, "tcp", h.now) is True  # our dialog: from anywhere
    assert receive(bytes(h.request("INFO", 2, from_tag="other")), SCANNER, "tcp", h.now) is False
    h.ua.pop_outputs()


def test_a_call_keeps_the_tcp_peers_it_uses_until_released(h: Harness) -> None:
    assert not h.ua.uses_tcp_peer(TRUNK)
    h.place(transport="tcp")
    assert h.ua.uses_tcp_peer(TRUNK)  # from the INVITE on, before any answer
    h.feed(h.respond(180), transport="tcp")
    h.feed(h.respond(200, sdp=answer_sdp()), transport="tcp")
    assert not h.ua.uses_tcp_peer(FAR)
    h.feed(h.request("INFO", 1), source=FAR, transport="tcp")  # the far end opened its own connection
    assert h.ua.uses_tcp_peer(FAR) and h.ua.uses_tcp_peer(TRUNK)
    h.feed(h.request("INFO", 2), source=SCANNER, transport="udp")  # UDP: no connection to keep
    assert not h.ua.uses_tcp_peer(SCANNER)
    h.feed(h.request("BYE", 3), source=FAR, transport="tcp")
    h.advance(3600)
    assert not h.ua.has_call("call_1")
    assert not h.ua.uses_tcp_peer(FAR) and not h.ua.uses_tcp_peer(TRUNK)


def test_default_config_trusts_nobody() -> None:
    ua = SipUserAgent(UaConfig(local_host=LOCAL_HOST, udp_port=5060, tcp_port=None))
    assert ua.config.is_trusted is trust_nobody
    ua.receive(bytes(outside_request("OPTIONS")), TRUNK, "udp", 0.0)
    assert ua.pop_outputs() == [] and ua.stats.dropped_untrusted == 1


def test_failing_trust_callback_counts_as_untrusted() -> None:
    def broken(ip: str) -> bool:
        raise RuntimeError("config reload in progress")

    ua = SipUserAgent(UaConfig(local_host=LOCAL_HOST, udp_port=5060, tcp_port=None, is_trusted=broken))
    ua.receive(bytes(outside_request("OPTIONS")), TRUNK, "udp", 0.0)
    assert ua.pop_outputs() == [] and ua.stats.dropped_untrusted == 1


# --------------------------------------------------------------------------- junk


def test_stray_responses_are_dropped(h: Harness) -> None:
    h.place()
    other = h.respond(200, sdp=answer_sdp())
    other.headers.set("Via", f"SIP/2.0/UDP {LOCAL_HOST}:5060;branch={new_branch()}")
    assert h.feed(other).sent == []
    unknown_call = h.respond(180)
    unknown_call.headers.set("Call-ID", "someone-else@x")
    assert h.feed(unknown_call).events == []
    assert h.ua.stats.dropped_responses == 2


def test_garbage_and_keepalives_are_counted(h: Harness) -> None:
    assert h.feed(b"\r\n\r\n").sent == []
    assert h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").sent == []
    assert h.feed(b"\x16\x03\x01\x00\xa5\x01\x00").sent == []
    stats = h.ua.stats
    assert (stats.received, stats.keepalives, stats.parse_errors) == (3, 1, 2)


def test_broken_session_expires_in_dialog_gets_400_from_the_dialog(h: Harness) -> None:
    h.answered_call()
    request = h.request("UPDATE", 1, headers=[("Session-Expires", "x")])
    assert h.feed(request, source=SCANNER).responses()[0].status == 400  # in our dialog: whoever sent it


def test_non_sip_request_uri_from_a_trunk_gets_416(h: Harness) -> None:
    request = outside_request("OPTIONS")
    request.uri = SipUri.parse("tel:+14155552671")
    assert h.feed(request, source=TRUNK).sent[0].response.status == 416
    assert h.feed(request, source=SCANNER).sent == []


def test_errors_while_handling_are_contained(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.answered_call()

    def typed_failure(*args: object) -> bool:
        raise SipHeaderError("unusable header", header="X")

    monkeypatch.setattr(OutboundCall, "receive_request", typed_failure)
    # something we cannot act on: 400 to a trunk, silence to anyone else
    assert h.feed(h.request("INFO", 1), source=SCANNER).sent == []
    [sent] = h.feed(h.request("INFO", 2), source=TRUNK).sent
    assert sent.response.status == 400 and h.ua.stats.bad_messages == 2 and h.ua.stats.answered_400 == 1

    def bug(*args: object) -> bool:
        raise RuntimeError("bug")

    monkeypatch.setattr(OutboundCall, "receive_request", bug)
    monkeypatch.setattr(OutboundCall, "on_timer", bug)
    assert h.feed(h.request("INFO", 3), source=TRUNK).sent == []
    h.ua.on_timer(h.now + 1000)
    assert h.ua.stats.internal_errors == 2
    h.ua.stats.internal_errors = 0  # expected here; the fixture checks for unexpected ones


def test_hangup_of_unknown_call_is_ignored(h: Harness) -> None:
    assert h.hangup(HangupCause.API_HANGUP, call_ref="call_nope").sent == []


# --------------------------------------------------------------------------- invalid requests

# An OPTIONS from the trunk, as bytes, with a hole for each test to break something.
INVALID = (
    "OPTIONS {uri} {version}\r\n"
    "Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-bad-1;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:carrier@203.0.113.10>;tag=c1\r\n"
    "To: <sip:100@198.51.100.7>\r\n"
    "Call-ID: bad-1@203.0.113.10\r\n"
    "CSeq: {cseq}\r\n"
    "Content-Length: {length}\r\n"
    "\r\n"
    "{body}"
)


def invalid(
    *,
    uri: str = "sip:100@198.51.100.7",
    version: str = "SIP/2.0",
    cseq: str = "1 OPTIONS",
    length: int | None = None,
    body: str = "",
) -> bytes:
    size = len(body) if length is None else length
    return INVALID.format(uri=uri, version=version, cseq=cseq, length=size, body=body).encode()


def answer_to(h: Harness, data: bytes, source: tuple[str, int] = TRUNK, transport: str = "udp") -> bytes:
    h.ua.receive(data, source, transport, h.now)  # type: ignore[arg-type]
    [out] = h.ua.pop_outputs()
    assert isinstance(out, Transmit) and out.destination == source and out.transport == transport
    return out.data


def status_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            invalid(cseq="1 INVITE"),
            b"SIP/2.0 400 Bad Request (CSeq method 'INVITE' does not match request method 'OPTIONS')",
        ),
        (
            invalid(uri="sip:100@[198.51.100.7"),
            b"SIP/2.0 400 Bad Request (unterminated IPv6 reference in '?198.51.100.7')",
        ),
        (invalid(version="SIP/3.0"), b"SIP/2.0 505 Version Not Supported (unsupported SIP version 'SIP/3.0')"),
        (
            invalid(length=120, body="v=0\r\n"),
            b"SIP/2.0 400 Bad Request (Content-Length 120 exceeds the 5 octets received)",
        ),
    ],
)
def test_invalid_requests_from_a_trunk_are_answered_with_their_status(
    h: Harness, data: bytes, expected: bytes
) -> None:
    sent = answer_to(h, data)
    assert status_line(sent) == expected
    response = parse_message(sent)
    assert isinstance(response, SipResponse)
    assert response.header("Via") == "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-bad-1;rport"
    assert response.header("From") == "<sip:carrier@203.0.113.10>;tag=c1"
    assert response.call_id == "bad-1@203.0.113.10" and response.to_tag is not None
    assert response.header("CSeq") == data.split(b"CSeq: ")[1].split(b"\r\n")[0].decode()
    # stateless: a retransmission gets the very same answer, and nothing is kept
    assert answer_to(h, data) == sent
    assert h.ua.next_deadline() is None
    assert h.ua.stats.parse_errors == 2 and h.ua.stats.answered_invalid == 2
    # the same bytes from anyone else: nothing at all
    assert h.feed(data, source=SCANNER).sent == []


def test_a_datagram_above_the_size_limit_gets_513(h: Harness) -> None:
    small = Harness(max_message_size=1024)
    big = invalid(body="a=x\r\n" * 200)
    assert status_line(answer_to(small, big)).startswith(b"SIP/2.0 513 Message Too Large (message of ")
    assert small.feed(big, source=SCANNER).sent == []
    assert h.feed(big).sent == [] or h.feed(big).responses()[0].status == 200  # within 64 KiB: parsed


def test_broken_streams_are_answered_from_their_head(h: Harness) -> None:
    too_big = SipMessageTooLargeError("message of 70000 octets exceeds 65536")
    too_big.head = invalid(length=70000)
    h.ua.framing_error(too_big, TRUNK, "tcp", h.now)
    [out] = h.ua.pop_outputs()
    assert isinstance(out, Transmit) and out.transport == "tcp"
    assert status_line(out.data) == b"SIP/2.0 513 Message Too Large (message of 70000 octets exceeds 65536)"
    no_length = SipContentLengthError("missing Content-Length on a stream transport", header="Content-Length")
    no_length.head = invalid().replace(b"Content-Length: 0\r\n", b"")
    h.ua.framing_error(no_length, TRUNK, "tcp", h.now)
    [out] = h.ua.pop_outputs()
    assert isinstance(out, Transmit)
    assert status_line(out.data) == b"SIP/2.0 400 Bad Request (missing Content-Length on a stream transport)"
    h.ua.framing_error(too_big, SCANNER, "tcp", h.now)  # not a trunk
    h.ua.framing_error(SipMessageTooLargeError("header section too large"), TRUNK, "tcp", h.now)  # no head
    assert h.ua.pop_outputs() == [] and h.ua.stats.parse_errors == 4


@pytest.mark.parametrize(
    "data",
    [
        invalid(cseq="1 INVITE").replace(b"OPTIONS sip", b"ACK sip"),  # never answer an ACK
        invalid(cseq="1 INVITE").replace(b"Call-ID: bad-1@203.0.113.10\r\n", b""),  # nothing to match it by
        invalid(cseq="1 INVITE").replace(b"Via: ", b"Via: ;"),  # nowhere to send it
        invalid(cseq="nonsense"),  # no CSeq to copy
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",  # a broken response
    ],
)
def test_invalid_messages_that_cannot_be_answered_are_dropped(h: Harness, data: bytes) -> None:
    assert h.feed(data).sent == []
    assert h.ua.stats.parse_errors == 1


def test_the_reason_phrase_names_the_problem_safely(h: Harness) -> None:
    data = invalid().replace(b"Max-Forwards: 70", b'Max-Forwards: "<70>"\x7f')
    sent = answer_to(h, data)
    # the offending value comes back only as characters a reason phrase may hold
    assert status_line(sent) == b"SIP/2.0 400 Bad Request (invalid Max-Forwards '??70???x7f')"
    assert parse_message(sent).call_id == "bad-1@203.0.113.10"


def test_errors_found_while_handling_use_their_status(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.answered_call()

    def misuse(*args: object) -> bool:
        raise TransactionUsageError("driven wrongly")

    monkeypatch.setattr(OutboundCall, "receive_request", misuse)
    [sent] = h.feed(h.request("INFO", 2), source=TRUNK).sent
    assert sent.response.status == 500



@pytest.mark.parametrize(("make_error", "status"), TYPED_ERRORS, ids=TYPED_ERROR_IDS)
def test_a_request_whose_handling_raises_a_typed_error_gets_its_status(
    h: Harness, monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], Exception], status: int
) -> None:
    h.answered_call()

    def failing(*args: object) -> bool:
        raise make_error()

    monkeypatch.setattr(OutboundCall, "receive_request", failing)
    [sent] = h.feed(h.request("INFO", 2), source=TRUNK).sent
    assert sent.response.status == status
    assert h.ua.stats.bad_messages == 1 and h.ua.stats.internal_errors == 0


# --------------------------------------------------------------------------- many calls


def test_calls_are_independent_and_deadlines_merge(h: Harness) -> None:
    h.ua.place_call(make_params(call_ref="a", ring_timeout=10), 0.0)
    h.ua.place_call(make_params(call_ref="b", ring_timeout=5), 0.0)
    step = h.drain()
    invites = step.requests("INVITE")
    assert [ref for ref in step.refs] == ["a", "b"]
    assert len({i.call_id for i in invites}) == 2 and len({i.from_tag for i in invites}) == 2
    assert h.ua.next_deadline() == T1
    for invite in invites:
        h.invite = invite
        h.feed(h.respond(180))
    assert h.ua.next_deadline() == 5.0
    step = h.advance(5.0)
    [cancel] = step.requests("CANCEL")
    assert cancel.call_id == invites[1].call_id
    h.invite = invites[0]
    step = h.answer()
    assert step.refs == ["a"] and isinstance(step.events[0], Answered)
    assert h.ua.active_calls() == 2
    h.invite = invites[1]
    step = h.feed(h.respond(487))
    assert step.refs == ["b"] and h.ua.active_calls() == 1


def test_every_call_is_released_exactly_once(h: Harness) -> None:
    for n in range(5):
        h.ua.place_call(make_params(call_ref=f"c{n}"), h.now)
    step = h.drain()
    for n, invite in enumerate(step.requests("INVITE")):
        h.invite = invite
        step += h.feed(h.respond(486 if n % 2 else 180))
    h.ua.hangup("c0", HangupCause.API_HANGUP, h.now)
    step += h.drain()
    step += h.advance(3600)
    released = [ref for ref, e in zip(step.refs, step.events, strict=True) if isinstance(e, Released)]
    ended_refs = [ref for ref, e in zip(step.refs, step.events, strict=True) if isinstance(e, Ended)]
    assert sorted(released) == sorted(ended_refs) == ["c0", "c1", "c2", "c3", "c4"]
    assert h.ua.next_deadline() is None and h.ua.active_calls() == 0


def test_outputs_are_transmits_and_events(h: Harness) -> None:
    h.ua.place_call(make_params(), 0.0)
    outputs = h.ua.pop_outputs()
    assert isinstance(outputs[0], CallEvent) and isinstance(outputs[1], Transmit)
    assert h.ua.pop_outputs() == []
    assert h.ua.stats.sent == 1 and h.ua.stats.calls_placed == 1


# --------------------------------------------------------------------------- fuzz

_NASTY = [
    b"",
    b"0",
    b"-1",
    b"4294967296",
    b"<sip:>",
    b"\xff\xfe",
    b";tag=",
    b",,,",
    b"Digest",
    b'Digest realm="r", nonce="n", algorithm=SHA-999',
    b"sip:x@[::1]:99999",
    b"application/sdp",
    b"v=0\r\nm=audio 0 RTP/AVP 0",
    b"1800;refresher=uas",
    b"*",
    b"<sip:a@b;lr>, <tel:+1>",
]


def _seeds(h: Harness) -> list[bytes]:
    invite = h.invite
    assert invite is not None
    sdp = answer_sdp()
    seeds = [
        h.respond(180),
        h.respond(183, sdp=sdp),
        h.respond(
            200, sdp=sdp, record_route=["<sip:p1.example.com;lr>"], headers=[("Session-Expires", "90")]
        ),
        h.respond(401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n", qop="auth"')]),
        h.respond(422, headers=[("Min-SE", "600")]),
        h.respond(487),
        h.request("BYE", 5),
        h.request("INVITE", 6, body=sdp, content_type="application/sdp"),
        h.request("INVITE", 7),
        h.request(
            "UPDATE", 8, body=sdp, content_type="application/sdp", headers=[("Session-Expires", "200")]
        ),
        h.request("INFO", 9, body=b"Signal=5\r\nDuration=100\r\n", content_type="application/dtmf-relay"),
        h.request("OPTIONS", 10),
        h.request("ACK", 6, body=sdp, content_type="application/sdp"),
        h.request("CANCEL", 6),
        outside_request("INVITE"),
        outside_request("OPTIONS"),
    ]
    return [bytes(s) for s in seeds]


@st.composite
def _mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    lines = seed.split(b"\r\n")
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "value", "drop", "dup", "truncate", "insert"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "flip" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            line = bytearray(lines[i])
            line[j] = draw(st.integers(0, 255))
            lines[i] = bytes(line)
        elif kind == "value" and b":" in lines[i]:
            name = lines[i].split(b":", 1)[0]
            value = draw(st.one_of(st.sampled_from(_NASTY), st.binary(max_size=40)))
            lines[i] = name + b": " + value
        elif kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "truncate":
            lines = lines[: i + 1]
        elif kind == "insert":
            lines.insert(i, draw(st.binary(max_size=60)))
    return b"\r\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_receive_never_raises(data: st.DataObject) -> None:
    h = Harness()
    h.place(credentials=None)
    if data.draw(st.booleans()):
        h.feed(h.respond(180))
        h.answer(headers=[("Session-Expires", "120;refresher=uac")])
    seeds = _seeds(h)
    for _ in range(data.draw(st.integers(1, 6))):
        if data.draw(st.integers(0, 9)) == 0:
            payload = data.draw(st.binary(max_size=300))
        else:
            payload = data.draw(_mutation(data.draw(st.sampled_from(seeds))))
        source = data.draw(st.sampled_from([TRUNK, FAR, SCANNER]))
        transport = data.draw(st.sampled_from(["udp", "tcp"]))
        h.ua.receive(payload, source, transport, h.now)  # type: ignore[arg-type]
        for out in h.ua.pop_outputs():
            if isinstance(out, Transmit):
                parse_message(out.data)  # whatever we send must parse
        h.now += data.draw(st.sampled_from([0.0, 0.3, 5.0]))
        h.ua.on_timer(h.now)
        h.ua.pop_outputs()
    h.ua.hangup("call_1", HangupCause.API_HANGUP, h.now)
    h.advance(4000)
    assert h.ua.stats.internal_errors == 0
    assert h.ua.next_deadline() is None and h.ua.active_calls() == 0
