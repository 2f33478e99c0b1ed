"""Messages, headers and builders."""

from __future__ import annotations

import re

import pytest

from gateway.sip.errors import (
    SipHeaderError,
    SipParseError,
    SipStartLineError,
    SipUriError,
    SipVersionError,
)
from gateway.sip.headers import CSeq, Headers, NameAddr, Via, canonical_name, split_list
from gateway.sip.message import (
    SipRequest,
    SipResponse,
    make_ack,
    make_cancel,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    peek_call_id,
    reason_phrase,
    salvage_request,
)
from gateway.sip.uri import Params, SipUri

INVITE = (
    b"INVITE sip:+15551234567@trunk.example.com;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKabc123;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.net;branch=z9hG4bKdef456;received=203.0.113.9\r\n"
    b"Max-Forwards: 69\r\n"
    b"Route: <sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>\r\n"
    b'From: "Gateway" <sip:gw@example.org>;tag=f00\r\n'
    b"To: <sip:+15551234567@trunk.example.com;user=phone>\r\n"
    b"Call-ID: 8f2b@198.51.100.7\r\n"
    b"CSeq: 101 INVITE\r\n"
    b"Contact: <sip:gw@198.51.100.7:5060;transport=udp>\r\n"
    b"Record-Route: <sip:rr1.example.com;lr>\r\n"
    b"Record-Route: <sip:rr2.example.com;lr>\r\n"
    b"Timestamp: 54\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def invite() -> SipRequest:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    return msg


# --------------------------------------------------------------------------- Headers


def test_headers_multimap_is_ordered_case_insensitive_and_knows_compact_forms() -> None:
    h = Headers([("Via", "a"), ("X-Custom", "1"), ("v", "b"), ("x-custom", "2")])
    assert h.get("VIA") == "a"
    assert h.get_all("via") == ["a", "b"]
    assert h.get_all("X-CUSTOM") == ["1", "2"]
    assert h.count("v") == 2 and "Via" in h and "Route" not in h
    h.prepend("Via", "top")
    assert h.get_all("Via") == ["top", "a", "b"]
    assert h.items()[0] == ("Via", "top")
    h.set("via", "only")
    assert h.get_all("Via") == ["only"] and h.items()[0] == ("via", "only")
    assert h.remove("x-custom") == 2 and len(h) == 1
    h.prepend("Max-Forwards", "70")
    assert h.items()[0] == ("Max-Forwards", "70")


@pytest.mark.parametrize(
    ("name", "value"), [("Bad Name", "x"), ("", "x"), ("X", "a\r\nInjected: 1"), ("X", "a\nb")]
)
def test_headers_reject_invalid_names_and_line_breaks(name: str, value: str) -> None:
    with pytest.raises(SipHeaderError):
        Headers().add(name, value)


def test_canonical_names() -> None:
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert [canonical_name(c) for c in "imvftlcksoeu"] == [
        "Call-ID",
        "Contact",
        "Via",
        "From",
        "To",
        "Content-Length",
        "Content-Type",
        "Supported",
        "Subject",
        "Event",
        "Content-Encoding",
        "Allow-Events",
    ]
    assert canonical_name("X-Unknown") == "X-Unknown"


def test_split_list_respects_quotes_and_angle_brackets() -> None:
    value = '"Doe, John" <sip:j@x.example;a=1?subject=a,b>;q=0.5, <sip:k@y.example> ,sip:z@z.example'
    assert split_list(value) == [
        '"Doe, John" <sip:j@x.example;a=1?subject=a,b>;q=0.5',
        "<sip:k@y.example>",
        "sip:z@z.example",
    ]
    assert split_list(r'"a \", b" <sip:a@b>, <sip:c@d>') == [r'"a \", b" <sip:a@b>', "<sip:c@d>"]


def test_parser_splits_list_headers_only() -> None:
    raw = (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h1.example.com;branch=z9hG4bK1, SIP/2.0/UDP h2.example.com;branch=z9hG4bK2\r\n"
        b"f: <sip:b@example.com>;tag=1\r\n"
        b"t: <sip:a@example.com>\r\n"
        b"i: c1\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b'm: "Doe, John" <sip:j@x.example>, <sip:k@y.example>\r\n'
        b"Allow: INVITE, ACK , , BYE\r\n"
        b"Supported:\r\n"
        b"Subject: lunch, maybe\r\n"
        b'WWW-Authenticate: Digest realm="a, b", nonce="n"\r\n'
        b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
        b"l: 0\r\n\r\n"
    )
    m = parse_message(raw)
    assert [v.host for v in m.vias] == ["h1.example.com", "h2.example.com"]
    assert [c.display_name for c in m.contacts] == ["Doe, John", None]
    assert m.headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert m.headers.get_all("Supported") == [""]
    assert m.headers.get("Subject") == "lunch, maybe"
    assert m.www_authenticate == ['Digest realm="a, b", nonce="n"']
    assert m.headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT" and m.defects == []
    # compact names are stored in long form
    assert [n for n, _ in m.headers][:3] == ["Via", "Via", "From"]


def test_empty_element_in_via_or_contact_is_an_error() -> None:
    base = INVITE.replace(
        b"Contact: <sip:gw@198.51.100.7:5060;transport=udp>", b"Contact: <sip:a@b>,,<sip:c@d>"
    )
    with pytest.raises(SipHeaderError) as info:
        parse_message(base)
    assert info.value.header == "Contact"


# --------------------------------------------------------------------------- parsed header forms


def test_name_addr_forms() -> None:
    na = NameAddr.parse('"A \\"quoted\\" name" <sip:alice@atlanta.example.com>;tag=1928301774;x=y')
    assert na.display_name == 'A "quoted" name'
    assert na.uri.user == "alice" and na.tag == "1928301774"
    assert str(na) == '"A \\"quoted\\" name" <sip:alice@atlanta.example.com>;tag=1928301774;x=y'
    tokens = NameAddr.parse("Bob  Smith <sips:bob@biloxi.example.com>")
    assert tokens.display_name == "Bob Smith" and tokens.uri.is_secure
    spec = NameAddr.parse("sip:carol@chicago.example.com;tag=5")
    assert spec.display_name is None and spec.tag == "5" and len(spec.uri.params) == 0
    quoted_param = NameAddr.parse('<sip:a@b>;+sip.instance="<urn:uuid:f81d4fae>";expires=60')
    assert quoted_param.params["+sip.instance"] == '"<urn:uuid:f81d4fae>"'
    tagged = spec.with_tag("new")
    assert tagged.tag == "new" and spec.tag == "5"
    assert NameAddr.parse(str(na)) == na


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        "<sip:a@b",
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b >",
        "sip:a@b?x=y",
        "<sip:a@b>;;tag=1",
        "<sip:a@b>;tag=",
        "<sip:a@b> junk",
        "<sip:a@b>;bad value=1",
        "",
    ],
)
def test_name_addr_rejects(text: str) -> None:
    with pytest.raises(SipHeaderError):
        NameAddr.parse(text, "To")


def test_via_parsing() -> None:
    via = Via.parse("SIP / 2.0 / udp 192.0.2.1 : 5062 ; branch=z9hG4bKx ; rport=5070 ; received=203.0.113.1")
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.1", 5062)
    assert via.branch == "z9hG4bKx" and via.rport == 5070 and via.has_rport
    assert via.received == "203.0.113.1" and via.sent_by == "192.0.2.1:5062"
    flag = Via.parse("SIP/2.0/TLS [2001:db8::9]:5061;rport;branch=z9hG4bKy;maddr=224.2.0.1")
    assert flag.host == "[2001:db8::9]" and flag.port == 5061 and flag.transport == "TLS"
    assert flag.has_rport and flag.rport is None and flag.maddr == "224.2.0.1"
    assert str(flag) == "SIP/2.0/TLS [2001:db8::9]:5061;rport;branch=z9hG4bKy;maddr=224.2.0.1"
    built = Via("UDP", "2001:db8::1", 5060, Params([("branch", "z9hG4bKz"), ("rport", None)]))
    assert str(built) == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKz;rport"


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0 192.0.2.1",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP 192.0.2.1:99999",
        "SIP/2.0/UDP 192.0.2.1;rport=abc",
        "SIP/2.0/UDP host name",
        "SIP/2.0/UDP 192.0.2.1;;branch=z9hG4bK1",
    ],
)
def test_via_rejects(text: str) -> None:
    with pytest.raises(SipHeaderError):
        Via.parse(text)


def test_cseq() -> None:
    assert CSeq.parse("  0009 \t INVITE ") == (9, "INVITE")
    assert str(CSeq(2**31 - 1, "BYE")) == "2147483647 BYE"
    for bad in ("2147483648 INVITE", "-1 INVITE", "1", "1 INVITE extra", "x INVITE", "1 IN<VITE"):
        with pytest.raises(SipHeaderError):
            CSeq.parse(bad)


# --------------------------------------------------------------------------- parse_message


def test_parse_request_accessors() -> None:
    m = invite()
    assert m.method == "INVITE" and m.uri.user == "+15551234567" and m.uri.params["user"] == "phone"
    assert m.via.branch == "z9hG4bKabc123" and m.via.has_rport and m.via.port == 5060
    assert m.vias[1].received == "203.0.113.9"
    assert m.max_forwards == 69
    assert [r.uri.host for r in m.route] == ["edge1.example.com", "edge2.example.com"]
    assert [r.uri.host for r in m.record_route] == ["rr1.example.com", "rr2.example.com"]
    assert m.from_.display_name == "Gateway" and m.from_tag == "f00" and m.to_tag is None
    assert m.call_id == "8f2b@198.51.100.7" and m.cseq == (101, "INVITE")
    contact = m.contact
    assert contact is not None and contact.uri.transport == "udp" and contact.uri.port == 5060
    assert m.content_type == "application/sdp" and m.body == b"v=0\n"
    assert m.is_request and m.defects == []


def test_parse_response_and_auth_challenges() -> None:
    raw = (
        b"SIP/2.0 407 Proxy Authentication Required\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKabc123\r\n"
        b"From: <sip:gw@example.org>;tag=f00\r\n"
        b"To: <sip:bob@example.com>;tag=t1\r\n"
        b"Call-ID: c\r\n"
        b"CSeq: 1 INVITE\r\n"
        b'Proxy-Authenticate: Digest realm="trunk", nonce="abc", algorithm=MD5, qop="auth"\r\n'
        b'Proxy-Authenticate: Digest realm="trunk", nonce="def", algorithm=SHA-256\r\n'
        b"Content-Type: Application/SDP; charset=utf-8\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    m = parse_message(raw)
    assert isinstance(m, SipResponse)
    assert m.status == 407 and m.reason == "Proxy Authentication Required"
    assert m.is_final and not m.is_success and not m.is_provisional
    assert m.proxy_authenticate == [
        'Digest realm="trunk", nonce="abc", algorithm=MD5, qop="auth"',
        'Digest realm="trunk", nonce="def", algorithm=SHA-256',
    ]
    assert m.www_authenticate == []
    assert m.content_type == "application/sdp"
    assert m.to_tag == "t1"


def test_body_framing_rules_for_datagrams() -> None:
    short = INVITE.replace(b"Content-Length: 4", b"Content-Length: 2")
    assert parse_message(short).body == b"v="  # extra octets discarded (18.3)
    without = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_message(without).body == b"v=0\n"  # absent: rest of datagram
    assert parse_message(b"\r\n\r\n" + INVITE).method == "INVITE"  # type: ignore[union-attr]
    lf_only = INVITE.replace(b"\r\n", b"\n")
    m = parse_message(lf_only)
    assert m.call_id == "8f2b@198.51.100.7" and m.body == b"v=0\n"


def test_folded_headers_are_unfolded() -> None:
    raw = INVITE.replace(b"Subject", b"X").replace(
        b"Call-ID: 8f2b@198.51.100.7", b"Call-ID:\r\n  8f2b@198.51.100.7"
    )
    raw = raw.replace(b"Timestamp: 54\r\n", b"Subject: one\r\n\t two\r\n")
    m = parse_message(raw)
    assert m.call_id == "8f2b@198.51.100.7"
    assert m.headers.get("Subject") == "one two"
    blank_fold = parse_message(INVITE.replace(b"Timestamp: 54\r\n", b"Timestamp: 54\r\n \r\n"))
    assert blank_fold.headers.get("Timestamp") == "54"
    assert parse_message(bytes(blank_fold)) == blank_fold


@pytest.mark.parametrize(
    ("mutation", "error", "status"),
    [
        ((b"INVITE sip:", b"INVITE  sip:"), None, 0),  # liberal: flagged, not rejected
        ((b" SIP/2.0\r\nVia", b" SIP/3.0\r\nVia"), SipVersionError, 505),
        ((b"INVITE sip:", b"INV ITE sip:"), SipStartLineError, 400),
        ((b"user=phone SIP", b"user=phone?Subject=x SIP"), SipUriError, 400),
        ((b"Max-Forwards: 69", b"Max-Forwards: 256"), SipHeaderError, 400),
        ((b"Max-Forwards: 69", b"Max-Forwards: 69\r\nMax-Forwards: 70"), SipHeaderError, 400),
        ((b"CSeq: 101 INVITE", b"CSeq: 101 BYE"), SipHeaderError, 400),
        ((b"Call-ID: 8f2b@198.51.100.7\r\n", b""), SipHeaderError, 400),
        ((b"Call-ID: 8f2b@198.51.100.7", b"Call-ID: a b"), SipHeaderError, 400),
        ((b"Timestamp: 54", b"Timestamp 54"), SipHeaderError, 400),
        ((b"Timestamp: 54", b"Time stamp: 54"), SipHeaderError, 400),
        ((b"Timestamp: 54", b"Timestamp: 5\r4"), SipHeaderError, 400),
        ((b"Content-Length: 4", b"Content-Length: 5"), SipHeaderError, 400),
        ((b"Content-Length: 4", b"Content-Length: 0x4"), SipHeaderError, 400),
        ((b"Contact: <sip:gw", b"Contact: *, <sip:gw"), SipHeaderError, 400),
    ],
)
def test_parse_errors(mutation: tuple[bytes, bytes], error: type[SipParseError] | None, status: int) -> None:
    raw = INVITE.replace(*mutation)
    assert raw != INVITE
    if error is None:
        assert parse_message(raw).defects == ["extra whitespace in request line"]
        return
    with pytest.raises(error) as info:
        parse_message(raw)
    assert info.value.status == status


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0",
        b"SIP/2.0 99 Low\r\n\r\n",
        b"SIP/2.0 700 High\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"SIP/2.0 200 OK\r\n Via: x\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
    ],
)
def test_malformed_inputs_raise_parse_errors(raw: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(raw)


def test_serialize_recomputes_content_length_in_place() -> None:
    m = invite()
    m.body = b"v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\n"
    wire = bytes(m)
    assert b"\r\nContent-Length: 34\r\n\r\nv=0\r\n" in wire
    assert wire.count(b"Content-Length") == 1
    assert wire.index(b"Content-Type") < wire.index(b"Content-Length")
    again = parse_message(wire)
    assert again.body == m.body and again == m


def test_serialize_adds_content_length_when_missing() -> None:
    m = invite()
    m.headers.remove("Content-Length")
    wire = bytes(m)
    assert wire.endswith(b"Content-Length: 4\r\n\r\nv=0\n")


def test_round_trip_is_stable() -> None:
    m = invite()
    wire = bytes(m)
    assert parse_message(wire) == m
    assert bytes(parse_message(wire)) == wire
    assert wire.startswith(b"INVITE sip:+15551234567@trunk.example.com;user=phone SIP/2.0\r\nVia: ")


def test_star_contact() -> None:
    raw = INVITE.replace(b"Contact: <sip:gw@198.51.100.7:5060;transport=udp>", b"Contact: *")
    m = parse_message(raw)
    assert m.has_star_contact and m.contacts == [] and m.contact is None


# --------------------------------------------------------------------------- builders


def test_random_identifiers() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(re.fullmatch(r"z9hG4bK[0-9a-f]{20}", b) for b in branches)
    assert re.fullmatch(r"[0-9a-f]{16}", new_tag()) and new_tag() != new_tag()
    call_id = new_call_id("gw.example.org")
    assert re.fullmatch(r"[0-9a-f]{24}@gw\.example\.org", call_id)


def test_make_request_builds_a_valid_message() -> None:
    branch = new_branch()
    req = make_request(
        "INVITE",
        "sip:+15551234567@trunk.example.com",
        from_=NameAddr(SipUri.parse("sip:gw@example.org"), "Gateway").with_tag("abc"),
        to="<sip:+15551234567@trunk.example.com>",
        call_id="cid@gw",
        cseq=1,
        via=Via("UDP", "198.51.100.7", 5060, Params([("branch", branch), ("rport", None)])),
        contact="<sip:gw@198.51.100.7:5060>",
        route=["<sip:edge.example.com;lr>"],
        headers=[("User-Agent", "orbit-gateway")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    parsed = parse_message(bytes(req))
    assert isinstance(parsed, SipRequest)
    assert parsed == req
    assert [n for n, _ in parsed.headers] == [
        "Via",
        "Max-Forwards",
        "Route",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "User-Agent",
        "Content-Type",
        "Content-Length",
    ]
    assert parsed.via.branch == branch and parsed.max_forwards == 70
    assert parsed.from_.display_name == "Gateway" and parsed.from_tag == "abc"
    assert parsed.cseq == (1, "INVITE") and parsed.content_type == "application/sdp"
    assert parsed.headers.get("Content-Length") == "5"


def test_make_response_copies_transaction_headers() -> None:
    req = invite()
    resp = make_response(req, 180, to_tag="totag")
    assert resp.status == 180 and resp.reason == "Ringing"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.headers.get("From") == req.headers.get("From")
    assert resp.to_tag == "totag"
    assert resp.to.uri == req.to.uri
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    assert resp.headers.get_all("Record-Route") == req.headers.get_all("Record-Route")
    assert "Timestamp" not in resp.headers and "Contact" not in resp.headers
    again = parse_message(bytes(resp))
    assert again == resp


def test_make_response_details() -> None:
    req = invite()
    trying = make_response(req, 100, to_tag="ignored-only-if-tagged")
    assert trying.headers.get("Timestamp") == "54"
    assert "Record-Route" not in trying.headers
    busy = make_response(req, 486)
    assert busy.reason == "Busy Here" and busy.to_tag is None and "Record-Route" not in busy.headers
    custom = make_response(
        req, 299, "Weird", headers=[("Contact", "<sip:x@y>")], body=b"x", content_type="text/plain"
    )
    assert custom.reason == "Weird" and custom.contact is not None and custom.body == b"x"
    already = parse_message(INVITE.replace(b"user=phone>\r\n", b"user=phone>;tag=keep\r\n"))
    assert isinstance(already, SipRequest)
    assert make_response(already, 200, to_tag="other").to_tag == "keep"
    assert reason_phrase(603) == "Decline" and reason_phrase(499) == ""
    with pytest.raises(ValueError):
        make_response(req, 700)


def test_make_ack_for_non_2xx() -> None:
    req = invite()
    resp = make_response(req, 486, to_tag="t486")
    ack = make_ack(req, resp)
    assert ack.method == "ACK" and ack.uri == req.uri
    assert ack.headers.get_all("Via") == [req.headers.get_all("Via")[0]]
    assert ack.headers.get_all("Route") == req.headers.get_all("Route")
    assert ack.headers.get("From") == req.headers.get("From")
    assert ack.to_tag == "t486" and ack.call_id == req.call_id
    assert ack.cseq == (101, "ACK") and ack.body == b""
    assert parse_message(bytes(ack)) == ack


def test_make_cancel() -> None:
    req = invite()
    cancel = make_cancel(req)
    assert cancel.method == "CANCEL" and cancel.uri == req.uri
    assert cancel.headers.get_all("Via") == [req.headers.get_all("Via")[0]]
    assert cancel.headers.get("To") == req.headers.get("To")
    assert cancel.cseq == (101, "CANCEL") and cancel.max_forwards == 69
    assert cancel.headers.get_all("Route") == req.headers.get_all("Route")
    assert parse_message(bytes(cancel)) == cancel


# --------------------------------------------------------------------------- peek_call_id


def test_peek_call_id_of_a_full_message() -> None:
    assert peek_call_id(INVITE) == "8f2b@198.51.100.7" == invite().call_id


@pytest.mark.parametrize(
    "line",
    [
        b"Call-ID: abc@host",
        b"call-id: abc@host",
        b"CALL-ID:abc@host",
        b"Call-ID \t:  abc@host  ",
        b"i: abc@host",
        b"I:abc@host",
        b"Call-ID:\r\n abc@host",  # the whole value on a continuation line
        b"Call-ID: abc@host\r\n\t",  # a continuation line with nothing on it
    ],
)
def test_peek_call_id_forms(line: bytes) -> None:
    data = INVITE.replace(b"Call-ID: 8f2b@198.51.100.7", line)
    assert peek_call_id(data) == "abc@host"
    assert parse_message(data).call_id == "abc@host"


def test_peek_call_id_unfolds_like_the_parser() -> None:
    data = INVITE.replace(b"Call-ID: 8f2b@198.51.100.7", b"Call-ID: abc\r\n  @host")
    assert peek_call_id(data) == "abc @host"  # a folded Call-ID has a space: never one of ours
    with pytest.raises(SipHeaderError):
        parse_message(data)


def test_peek_call_id_only_reads_the_header_section() -> None:
    response = (
        b"\r\n\r\nSIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nI: resp@h\r\nCSeq: 1 OPTIONS\r\nContent-Length: 12\r\n\r\nCall-ID: x\r\n"
    )
    assert peek_call_id(response) == "resp@h" == parse_message(response).call_id
    body_only = INVITE.replace(b"Call-ID: 8f2b@198.51.100.7\r\n", b"") + b"Call-ID: in-body\r\n"
    assert peek_call_id(body_only) is None
    # the start line is not a header, even when it looks like one
    assert peek_call_id(b"Call-ID: x\r\nVia: y\r\n\r\n") is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        INVITE.replace(b"Call-ID: 8f2b@198.51.100.7\r\n", b""),  # none
        INVITE.replace(b"Call-ID: 8f2b@198.51.100.7", b"Call-ID: a@h\r\ni: b@h"),  # two
        INVITE.replace(b"Call-ID: 8f2b@198.51.100.7", b"Call-ID:   "),  # empty
        INVITE.replace(b"Call-ID: 8f2b@198.51.100.7", b"Call-IDx: a@h"),  # another header
        INVITE.replace(b"Call-ID: 8f2b@198.51.100.7", b"Call-ID a@h"),  # no colon
    ],
)
def test_peek_call_id_garbage_and_ambiguity(data: bytes) -> None:
    assert peek_call_id(data) is None


def test_peek_call_id_keeps_undecodable_octets_as_the_parser_does() -> None:
    data = INVITE.replace(b"8f2b@198.51.100.7", b"\xff\xfe@h")
    assert peek_call_id(data) == parse_message(data).call_id


# --------------------------------------------------------------------------- salvage_request

BROKEN = (
    b"OPTIONS sip:gw@198.51.100.7 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKa1, SIP/2.0/TCP p.example.net;branch=z9hG4bKa0\r\n"
    b"v: SIP/2.0/UDP edge.example.net\r\n ;branch=z9hG4bKa\r\n"
    b"From: <sip:carrier@203.0.113.10>;tag=c1\r\n"
    b"t: <sip:gw@198.51.100.7>\r\n"
    b"Call-ID: broken-1@203.0.113.10\r\n"
    b"CSeq: 7 INVITE\r\n"  # does not match the method: parse_message refuses the request
    b"X-Junk: \x01\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_salvage_keeps_what_a_response_copies() -> None:
    with pytest.raises(SipHeaderError):
        parse_message(BROKEN)
    request = salvage_request(BROKEN)
    assert request is not None
    assert (request.method, request.uri_text, request.version) == ("OPTIONS", "sip:gw@198.51.100.7", "SIP/2.0")
    assert request.headers.get_all("Via") == [
        "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKa1",
        "SIP/2.0/TCP p.example.net;branch=z9hG4bKa0",
        "SIP/2.0/UDP edge.example.net ;branch=z9hG4bKa",
    ]
    assert [name for name, _ in request.headers] == ["Via", "Via", "Via", "From", "To", "Call-ID", "CSeq"]
    response = make_response(request, 400, "Bad Request (CSeq)", to_tag="t1")
    again = parse_message(bytes(response))
    assert isinstance(again, SipResponse) and again.status == 400
    assert again.headers.get_all("Via") == request.headers.get_all("Via")
    assert again.to_tag == "t1" and again.call_id == "broken-1@203.0.113.10" and again.cseq == CSeq(7, "INVITE")


@pytest.mark.parametrize(
    "data",
    [
        b"INVITE sip:a@b SIP/3.0\r\n",  # only the version is wrong
        b"INVITE sip:a b@c SIP/2.0\r\n",  # a space in the Request-URI
        b"INVITE <sip:a@b> SIP/2.0\r\n",  # not a URI at all
        b"\r\n\r\nINVITE sip:a@b SIP/2.0\n",  # leading CRLF, bare LF line ends
    ],
)
def test_salvage_takes_any_request_line_with_a_sip_version(data: bytes) -> None:
    rest = b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:x@h>;tag=1\nTo: <sip:y@h>\nCall-ID: c@h\nCSeq: 1 INVITE\n"
    request = salvage_request(data + rest)  # no end of the header section: it may have been cut
    assert request is not None and request.method == "INVITE" and request.call_id == "c@h"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"OPTIONS sip:gw@198.51.100.7 SIP/2.0", b"SIP/2.0 200 OK"),  # a response
        (b"OPTIONS sip:gw@198.51.100.7 SIP/2.0", b"GET / HTTP/1.1"),  # not SIP
        (b"OPTIONS sip:gw@198.51.100.7 SIP/2.0", b"OPTIONS sip:gw@198.51.100.7"),  # no version
        (b"OPTIONS sip:gw@198.51.100.7 SIP/2.0", b"OPT<IONS sip:gw@198.51.100.7 SIP/2.0"),  # method
        (b"From: <sip:carrier@203.0.113.10>;tag=c1\r\n", b""),  # missing From
        (b"t: <sip:gw@198.51.100.7>\r\n", b"t: <sip:gw@198.51.100.7>\r\nTo: <sip:x@y>\r\n"),  # two To
        (b"Call-ID: broken-1@203.0.113.10", b"Call-ID: two words"),
        (b"CSeq: 7 INVITE", b"CSeq: seven INVITE"),
        (b"From: <sip:carrier@203.0.113.10>;tag=c1", b"From: <sip:carrier@203.0.113.10;tag=c1"),
        (b"t: <sip:gw@198.51.100.7>", b"t: <sip:gw@198.51.100.7>\r"),  # bare CR: the To is lost
        (b"p.example.net;branch=z9hG4bKa0", b"p.example.net;;"),  # one broken Via among several
    ],
)
def test_salvage_gives_up_when_a_copied_header_is_unusable(old: bytes, new: bytes) -> None:
    data = BROKEN.replace(old, new)
    assert data != BROKEN
    assert salvage_request(data) is None


def test_salvage_needs_a_via() -> None:
    data = BROKEN.replace(b"Via:", b"X-Via:").replace(b"v:", b"X-v:")
    assert b"\r\nVia" not in data and b"\r\nv:" not in data
    assert salvage_request(data) is None


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00", b"\xff" * 64])
def test_salvage_of_garbage_is_none(data: bytes) -> None:
    assert salvage_request(data) is None
