"""Torture messages (corpus/torture, RFC 4475-style categories) against parse_message and StreamFramer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.sip.errors import (
    SipContentLengthError,
    SipHeaderError,
    SipParseError,
    SipStartLineError,
    SipUriError,
    SipVersionError,
)
from gateway.sip.framing import StreamFramer
from gateway.sip.message import SipRequest, SipResponse, parse_message
from gateway.sip.transaction import server_key_for_request
from gateway.sip.uri import SipUri

CORPUS = Path(__file__).parent / "corpus" / "torture"

_SPECIAL = re.compile(r"<hex>(.*?)</hex>|<repeat count=(\d+)>(.*?)</repeat>", re.S)


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def expand(text: str) -> bytes:
    """Expand the corpus notation: line breaks are CRLF, <hex> is raw octets, <repeat> repeats text."""
    text = re.sub(
        r"<allOneLine>\n(.*?)\n</allOneLine>", lambda m: m.group(1).replace("\n", ""), text, flags=re.S
    )
    out = bytearray()
    pos = 0
    for m in _SPECIAL.finditer(text):
        out += _crlf(text[pos : m.start()])
        if m.group(1) is not None:
            out += bytes.fromhex("".join(m.group(1).split()))
        else:
            out += _crlf(m.group(3) * int(m.group(2)))
        pos = m.end()
    out += _crlf(text[pos:])
    return bytes(out)


def load_torture(name: str) -> bytes:
    return expand((CORPUS / f"{name}.txt").read_text(encoding="utf-8"))


def request(name: str) -> SipRequest:
    msg = parse_message(load_torture(name))
    assert isinstance(msg, SipRequest)
    return msg


def response(name: str) -> SipResponse:
    msg = parse_message(load_torture(name))
    assert isinstance(msg, SipResponse)
    return msg


def stream(data: bytes, chunk: int = 7) -> tuple[list[bytes], StreamFramer]:
    """Feed ``data`` to a fresh framer in small chunks; framing errors propagate."""
    framer = StreamFramer()
    frames: list[bytes] = []
    for i in range(0, len(data), chunk):
        frames += framer.feed(data[i : i + chunk])
    return frames, framer


VALID = [
    "valid-folded-headers",
    "valid-compact-forms",
    "valid-header-name-case",
    "valid-extension-method-token",
    "valid-escaped-uri-chars",
    "valid-escaped-nul-in-uri",
    "valid-percent-not-escape-in-tokens",
    "valid-quoted-separators",
    "valid-long-values-many-headers",
    "valid-semicolon-in-user-part",
    "valid-unknown-transports",
    "valid-multipart-binary",
    "valid-utf8-reason-phrase",
    "valid-empty-reason-phrase",
    "valid-ipv6-references",
    "valid-unknown-scheme-headers",
    "valid-tel-uris",
    "valid-contact-star-unregister",
]
# Valid as datagrams; their interest is how they behave on a stream transport.
FRAMING = [
    "framing-two-requests-one-datagram",
    "framing-content-length-short",
    "framing-folded-content-length",
    "framing-no-content-length",
]
# Deviations a liberal parser accepts: parsed, but flagged.
ACCEPTED_WITH_DEFECT = {
    "defect-request-line-extra-spaces": "extra whitespace in request line",
    "defect-request-line-trailing-space": "extra whitespace in request line",
    "defect-bad-date": "invalid Date header ignored",
    "defect-no-blank-line": "header section not terminated by an empty line",
}
# Syntactically valid; what is odd about them is for the transaction/UA layers to act on.
SEMANTIC_OK = [
    "semantic-branch-cookie-only",
    "semantic-unknown-scheme-request-uri",
    "semantic-unknown-extensions",
    "semantic-max-forwards-zero",
    "semantic-contact-param-placement",
    "semantic-escaped-headers-in-contact",
    "semantic-rfc2543-request",
]
# name -> (exact error class, status, header named by the error)
INVALID: dict[str, tuple[type[SipParseError], int, str | None]] = {
    "invalid-missing-call-id": (SipHeaderError, 400, "Call-ID"),
    "invalid-missing-via": (SipHeaderError, 400, "Via"),
    "invalid-duplicate-content-length": (SipHeaderError, 400, "Content-Length"),
    "invalid-duplicate-to-compact": (SipHeaderError, 400, "To"),
    "invalid-duplicate-from": (SipHeaderError, 400, "From"),
    "invalid-duplicate-call-id": (SipHeaderError, 400, "Call-ID"),
    "invalid-duplicate-cseq": (SipHeaderError, 400, "CSeq"),
    "invalid-negative-content-length": (SipHeaderError, 400, "Content-Length"),
    "invalid-huge-content-length": (SipHeaderError, 400, "Content-Length"),
    "invalid-content-length-exceeds-body": (SipHeaderError, 400, "Content-Length"),
    "invalid-content-length-empty": (SipHeaderError, 400, "Content-Length"),
    "invalid-sip-version": (SipVersionError, 505, None),
    "invalid-response-version": (SipVersionError, 505, None),
    "invalid-status-code": (SipStartLineError, 400, None),
    "invalid-cseq-method-mismatch": (SipHeaderError, 400, "CSeq"),
    "invalid-cseq-number-too-large": (SipHeaderError, 400, "CSeq"),
    "invalid-unterminated-quote": (SipHeaderError, 400, "To"),
    "invalid-unbalanced-angle": (SipHeaderError, 400, "Contact"),
    "invalid-via-missing-transport": (SipHeaderError, 400, "Via"),
    "invalid-space-in-request-uri": (SipStartLineError, 400, None),
    "invalid-request-uri-bad-escape": (SipUriError, 400, None),
    "invalid-request-uri-with-headers": (SipUriError, 400, None),
    "invalid-request-uri-malformed-scheme": (SipUriError, 400, None),
    "invalid-non-utf8-start-line": (SipStartLineError, 400, None),
    "invalid-nul-in-call-id": (SipHeaderError, 400, "Call-ID"),
    "invalid-max-forwards-out-of-range": (SipHeaderError, 400, "Max-Forwards"),
    "invalid-display-name-unquoted-specials": (SipHeaderError, 400, "From"),
    "invalid-contact-addr-spec-with-query": (SipHeaderError, 400, "Contact"),
    "invalid-missing-blank-line-before-body": (SipHeaderError, 400, None),
    "invalid-truncated-header": (SipParseError, 400, None),
}
# Parseable, Content-Length-framed messages: a stream must yield exactly the datagram.
STREAMABLE = [
    *VALID,
    *SEMANTIC_OK[:-1],  # the RFC 2543 request has no Content-Length
    *(n for n in ACCEPTED_WITH_DEFECT if n != "defect-no-blank-line"),
]


def test_corpus_holds_every_message_once() -> None:
    names = sorted(p.stem for p in CORPUS.glob("*.txt"))
    groups = [VALID, FRAMING, list(ACCEPTED_WITH_DEFECT), SEMANTIC_OK, list(INVALID)]
    listed = [n for group in groups for n in group]
    assert len(listed) == len(set(listed)) == 63
    assert names == sorted(listed)
    prefixes = ["valid-", "framing-", "defect-", "semantic-", "invalid-"]
    for prefix, group in zip(prefixes, groups, strict=True):
        assert all(n.startswith(prefix) for n in group), prefix


def test_expand_notation() -> None:
    assert expand("a\nb<hex>00 7F</hex>\n") == b"a\r\nb\x00\x7f\r\n"
    assert expand("x<repeat count=3>ab</repeat>") == b"xababab"
    assert expand("<repeat count=2>H: v\n</repeat>end") == b"H: v\r\nH: v\r\nend"
    assert expand("<allOneLine>\nab\ncd\n</allOneLine>\n") == b"abcd\r\n"


def test_no_file_ends_with_stray_whitespace_outside_the_message() -> None:
    # every file ends with a line break except the one cut off mid-header
    for path in CORPUS.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n") != (path.stem == "invalid-truncated-header"), path.stem


# --------------------------------------------------------------------------- valid


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_round_trip(name: str) -> None:
    m = parse_message(load_torture(name))
    assert m.defects == []
    wire = bytes(m)
    again = parse_message(wire)
    assert again == m
    assert again.defects == []
    assert bytes(again) == wire


@pytest.mark.parametrize("name", STREAMABLE)
def test_accepted_messages_frame_identically_on_a_stream(name: str) -> None:
    data = load_torture(name)
    frames, framer = stream(data)
    assert frames == [data]
    assert framer.buffered == 0 and framer.error is None
    assert parse_message(frames[0]) == parse_message(data)


def test_folded_headers_and_odd_whitespace() -> None:
    m = request("valid-folded-headers")
    assert m.method == "OPTIONS"
    assert m.uri.user == "marisol" and "coastal" in m.uri.params and m.uri.params["coastal"] is None
    assert m.to.display_name == "Marisol" and m.to.uri.host == "lighthouse.example.org"
    assert m.from_.display_name == "Keeper" and m.from_tag == "ab17-folded"
    assert m.max_forwards == 42
    assert tuple(m.cseq) == (311, "OPTIONS")
    assert m.call_id == "fold.7c1e2b@harbour.example.net"
    assert [(v.protocol, v.transport, v.host, v.port, v.branch) for v in m.vias] == [
        ("SIP/2.0", "UDP", "198.51.100.40", 5062, "z9hG4bK.fold.one"),
        ("SIP/2.0", "TCP", "relay.example.net", None, "z9hG4bK.fold.two"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("X-Weather-Report") == "calm seas, light\tbreeze and fog later"
    assert m.headers.get("X-Separators-Only") == ";,;;,,;"
    contact = m.contact
    assert contact is not None and contact.display_name == 'Keeper "Night" Shift'
    assert contact.uri == SipUri.parse("sip:keeper@192.0.2.140")
    assert contact.params.items() == [("q", "0.5"), ("night-shift", None)]
    assert m.body == b""


def test_compact_forms_are_stored_in_long_form() -> None:
    m = request("valid-compact-forms")
    assert [name for name, _ in m.headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Supported",
        "Supported",
        "Subject",
        "Content-Type",
        "Content-Length",
    ]
    assert m.via.host == "203.0.113.8" and m.via.port == 5080 and m.via.branch == "z9hG4bK-cmp-551"
    assert m.from_.display_name == "Dara at Home" and m.from_tag == "cmp-f-01"
    assert m.to.uri == SipUri.parse("sip:dara@studio.example.org") and m.to_tag is None
    assert m.call_id == "compact-88f0a2e1@residence.example.net"
    assert m.headers.get_all("k") == ["timer", "100rel"]
    assert m.headers.get("Subject") == "Rehearsal at nine"
    assert m.content_type == "application/sdp"
    assert len(m.body) == int(m.headers.get("l") or "") == 109
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"RTP/AVP 8\r\n")


def test_header_names_and_tokens_in_any_case() -> None:
    m = request("valid-header-name-case")
    assert bytes(m).startswith(b"REGISTER sip:registrar.example.org SIP/2.0\r\n")
    assert [name for name, _ in m.headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Expires",
        "Content-Length",
    ]
    via = m.via
    assert via.protocol == "SIP/2.0" and via.transport == "TCP"
    assert via.branch == "z9hG4bKCaSe77" and via.has_rport and via.rport is None
    assert m.from_tag == "CaseTag9"
    assert m.call_id == "MiXeD-cAsE-0041@192.0.2.77"  # Call-ID is case-sensitive
    contact = m.contact
    assert contact is not None and contact.uri.scheme == "sip" and contact.uri.transport == "tcp"
    assert contact.uri == SipUri.parse("sip:orla@192.0.2.77:5090;transport=tcp")
    assert contact.params["expires"] == "600"
    assert m.max_forwards == 69 and m.headers.get("expires") == "600"


def test_extension_method_and_unusual_token_characters() -> None:
    m = request("valid-extension-method-token")
    method = "Z.frob-it!now%*_+`'~7"
    assert m.method == method and tuple(m.cseq) == (2147483647, method)
    assert bytes(m).startswith(method.encode() + b" sip:")
    assert m.uri.user == "o'brien-(desk)!*~_." and m.uri.password == "pa$$=w0rd&,+"
    assert m.uri.host == "switch.example.org"
    assert m.via.transport == "TLS" and m.via.branch == "z9hG4bK~'`+_*%!.-ext"
    assert m.to.display_name == "Tab:\t BS:\x08 ESC:\x1b"
    assert m.to.uri.user == m.uri.user and m.to.uri.password is None
    assert m.from_.display_name == "odd~token `quoted'+_ mark*%!.-"
    assert m.from_.params["ext~param'*+_!.-%"] == "token-val`~"
    assert m.from_tag == "x`~'!*.-"
    assert m.call_id == "ext!id%*_+`'~.-@<>:\\/\"[]?{}(ext.example.net)"
    assert m.max_forwards == 255
    assert m.headers.get("X-Ext!%*_+`'~.") == "Grüße aus Köln ☎"
    assert m.body == b""


def test_escaped_characters_in_uris_and_display_names() -> None:
    m = request("valid-escaped-uri-chars")
    assert m.uri.user == "sips:agent@vault.example.org" and m.uri.host == "gateway.example.net"
    assert m.uri.params["hint"] == "access"
    assert str(m.uri) == "sip:sips%3Aagent%40vault.example.org@gateway.example.net;hint=access"
    # escapes compare unescaped; "hint" is only on one side and is not a strict parameter
    assert m.to.uri == m.uri
    assert m.to.uri == SipUri.parse("sip:sips%3Aagent%40vault.example.org@gateway.example.net")
    assert m.from_.display_name == 'Night "Owl" \\ Co'
    assert m.from_.uri.user == "Night Owl" and m.from_tag == "esc-42"
    contact = m.contact
    assert contact is not None and contact.uri.user == "nowl" and contact.uri.lr
    assert contact.uri.params["label"] == "caf%e"
    assert str(contact.uri) == "sip:nowl@owls.example.net;lr;label=caf%25e"


def test_escaped_nul_octets_in_uris() -> None:
    m = request("valid-escaped-nul-in-uri")
    assert m.method == "REGISTER"
    assert m.to.uri.user == m.from_.uri.user == "zero-\x00-zero"
    assert [c.uri.user for c in m.contacts] == ["\x00", "\x00\x00\x00"]
    assert str(m.contacts[1].uri) == "sip:%00%00%00@192.0.2.56"
    assert m.contacts[1].params["expires"] == "120" and len(m.contacts[0].params) == 0
    assert m.headers.get("Content-Length") == "0"  # sent as compact "L"
    assert m.body == b""


def test_percent_is_literal_in_method_and_header_names() -> None:
    m = request("valid-percent-not-escape-in-tokens")
    assert m.method == "PUB%4cISH" and m.method != "PUBLISH"
    assert m.cseq.method == "PUB%4cISH"
    assert m.to.display_name == "%41%zz"
    assert m.via.branch == "z9hG4bK%zz%4cpct"
    assert m.headers.count("Expires") == 1 and m.headers.get("Expires") == "60"
    assert m.headers.get("Ex%70ires") == "3600"


def test_semicolons_and_commas_inside_quoted_strings() -> None:
    m = request("valid-quoted-separators")
    assert m.from_.display_name == "Lobby; Kiosk 4, Ground Floor" and m.from_tag == "qs-1"
    assert m.to.display_name == "Help, Desk; Tier 1"
    (via,) = m.vias
    assert via.params["comment"] == '"a;b,c=d"' and via.branch == "z9hG4bKq-sep-1"
    first, second, third = m.contacts
    assert first.display_name == "Lobby; Kiosk 4, Ground Floor" and first.uri.transport == "tcp"
    assert first.params.items() == [("note", '"x,y;z"'), ("q", "0.7")]
    assert second.uri.user == "kiosk4-backup" and second.params.items() == [("q", "0.3")]
    # addr-spec form: the quoted parameter value may hold '<' and '>' (and escaped quotes)
    assert third.display_name is None and third.uri.user == "kiosk4-alt" and len(third.uri.params) == 0
    assert third.params.items() == [("label", '"<lobby> & \\"east\\" wing"'), ("q", "0.1")]
    assert m.headers.get_all("Accept") == [
        'text/plain;charset="utf-8, really"',
        "application/im-iscomposing+xml",
    ]
    assert m.content_type == "text/plain"
    assert m.body == b"Printer on floor 2 is out of paper; please send someone, thanks.\r\n"


def test_long_values_and_many_headers() -> None:
    m = request("valid-long-values-many-headers")
    to = m.to
    assert to.display_name == "very " * 12 + "patient listener"
    assert to.uri.port == 7070
    assert to.uri.params["x" * 30 + "param"] == "ab" * 40
    assert to.uri.params["flag" + "-long" * 20] is None
    assert to.tag == "0f" * 16
    assert m.from_.uri.user == "runner" * 8 and m.from_tag == "lv-1"
    assert m.call_id == "lv." + "segment" * 25 + ".end@track.example.net"
    vias = m.vias
    assert len(vias) == 25
    assert [(v.host, v.port) for v in vias[:24]] == [
        (f"relay{n:02d}.example.net", 5000 + n) for n in range(24, 0, -1)
    ]
    assert vias[-1].transport == "UDP" and vias[-1].received == "198.51.100.200"
    assert vias[-1].branch == "z9hG4bK" + "lap" * 60
    assert m.headers.get_all("X-Padding") == ["filler"] * 120
    assert len(m.headers) == 152
    contact = m.contact
    assert contact is not None and contact.uri.user == "runner" * 8
    assert m.body == b""


def test_semicolon_in_user_part_is_not_a_parameter() -> None:
    m = request("valid-semicolon-in-user-part")
    assert m.uri.user == "desk;room=12@lab.example.org"
    assert m.uri.host == "pbx.example.org" and len(m.uri.params) == 0
    assert m.to.uri == m.uri
    assert m.headers.get_all("Accept") == [
        "application/sdp",
        "message/sipfrag",
        "text/plain",
        "application/pidf+xml",
    ]


def test_unknown_transport_tokens() -> None:
    m = request("valid-unknown-transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "WSS", "TLS-SCTP", "CARRIER-PIGEON", "TCP"]
    assert [v.port for v in m.vias] == [None, None, None, None, 1, None]
    assert m.vias[4].sent_by == "loft.example.net:1"
    assert all(v.branch is not None and v.branch.startswith("z9hG4bKtr-") for v in m.vias)


BINARY_PART = bytes.fromhex(
    "89 50 4E 47 0D 0A 1A 0A 00 00 00 0D 49 48 44 52 00 FF FE 80 7F 01 02 03 C3 28 A0 A1 E2 28 A1"
)


def test_multipart_body_with_binary_part() -> None:
    m = request("valid-multipart-binary")
    assert m.content_type == "multipart/mixed"
    assert m.headers.get("Content-Type") == "multipart/mixed;boundary=xq7-b0undary-19"
    assert len(m.body) == int(m.headers.get("Content-Length") or "") == 265
    assert m.body.startswith(b"--xq7-b0undary-19\r\nContent-Type: text/plain\r\n\r\nScan attached.\r\n")
    assert m.body.endswith(b"filename=page1.bin\r\n\r\n" + BINARY_PART + b"\r\n--xq7-b0undary-19--\r\n")
    assert m.body.count(b"--xq7-b0undary-19") == 3
    assert m.via.port == 5071 and m.via.has_rport and m.via.rport is None
    assert m.defects == []  # its Date is a valid rfc1123-date


def test_utf8_reason_phrase() -> None:
    m = response("valid-utf8-reason-phrase")
    assert m.status == 486 and not m.is_success
    assert m.reason == "Zajęte — proszę zadzwonić później ☏"
    assert m.headers.get("Server") == "Gateway/1.0 (テスト)"
    assert m.body.decode("utf-8") == "Linia zajęta. Spróbuj ponownie za pięć minut.\r\n"
    assert len(m.body) == 51


def test_empty_reason_phrase_and_broadcast_via() -> None:
    m = response("valid-empty-reason-phrase")
    assert m.status == 183 and m.reason == "" and m.is_provisional
    assert bytes(m).startswith(b"SIP/2.0 183 \r\n")
    assert [v.host for v in m.vias] == ["192.0.2.18", "255.255.255.255"]
    assert m.to_tag == "nr-b" and m.from_tag == "nr-a"


def test_ipv6_references() -> None:
    m = request("valid-ipv6-references")
    assert m.uri.host == "[2001:db8:0:0:0:0:0:7]" and m.uri.host_address == "2001:db8:0:0:0:0:0:7"
    assert m.uri.port == 5070 and m.uri.maddr == "[2001:db8::99]"
    assert [(v.transport, v.host, v.port) for v in m.vias] == [
        ("UDP", "[2001:db8::10]", 5070),
        ("TCP", "[2001:db8::192.0.2.4]", None),
    ]
    assert m.via.received == "2001:db8::ff" and m.via.sent_by == "[2001:db8::10]:5070"
    assert m.from_.uri.host == "[2001:db8::10]" and m.from_.uri.port == 5070
    assert m.to.uri.host == "[2001:db8::7]"
    assert m.call_id == "ipv6-refs.7f7f@[2001:db8::10]"
    contact = m.contact
    assert contact is not None and contact.uri.host == "[2001:DB8::10]"
    assert contact.uri == SipUri.parse("sip:tester@[2001:db8::10]:5070;transport=udp")


def test_unknown_uri_schemes_in_headers_are_opaque() -> None:
    m = request("valid-unknown-scheme-headers")
    assert m.to.uri.scheme == "urn" and not m.to.uri.is_sip
    assert m.to.uri.opaque == "uuid:5b8c1a44-7d2e-4f0b-9a65-3c1d2e0f9b7a"
    assert m.from_.display_name == "Catalog" and m.from_tag == "unk-1"
    assert m.from_.uri.scheme == "https" and m.from_.uri.opaque == "//catalog.example.net/items/4417"
    contact = m.contact
    assert contact is not None and contact.uri.scheme == "im"
    assert str(contact.uri) == "im:returns@catalog.example.net"
    assert m.headers.get("Call-Info") == "<ftp://files.example.net/manual.txt>;purpose=info"


def test_tel_uris() -> None:
    m = request("valid-tel-uris")
    assert m.uri.scheme == "tel" and m.uri.user == "+44-20-7946-0018" and m.uri.host == ""
    assert m.to.uri == m.uri  # visual separators are ignored
    assert str(m.to.uri) == "tel:+44(20)7946.0018"
    assert m.from_.uri.params["user"] == "phone"


def test_star_contact_unregisters_everything() -> None:
    m = request("valid-contact-star-unregister")
    assert m.has_star_contact
    assert m.contacts == [] and m.contact is None
    assert m.headers.get("Expires") == "0"


# --------------------------------------------------------------------------- framing


def test_two_requests_in_one_datagram() -> None:
    data = load_torture("framing-two-requests-one-datagram")
    # As a datagram: one REGISTER, the octets after its Content-Length are discarded.
    m = parse_message(data)
    assert isinstance(m, SipRequest) and m.method == "REGISTER" and m.body == b""
    assert m.call_id == "two-in-one.1200@192.0.2.120"
    # On a stream: two messages, the CRLFs between them are keep-alives.
    frames, framer = stream(data)
    assert [parse_message(f).cseq for f in frames] == [(1, "REGISTER"), (2, "OPTIONS")]
    assert parse_message(frames[1]).body == b"second message body\r\n"
    assert framer.buffered == 0 and framer.error is None


def test_content_length_shorter_than_body() -> None:
    data = load_torture("framing-content-length-short")
    m = parse_message(data)
    assert m.body == b"pinned note\r\n"  # the rest of the datagram is discarded
    assert "Trailing" not in m.headers
    # On a stream the leftover looks like a message without Content-Length: unframeable.
    framer = StreamFramer()
    frames = framer.feed(data)
    assert len(frames) == 1 and parse_message(frames[0]) == m
    assert isinstance(framer.error, SipContentLengthError)
    with pytest.raises(SipContentLengthError):
        framer.feed(b"")


def test_folded_compact_content_length() -> None:
    data = load_torture("framing-folded-content-length")
    m = parse_message(data)
    assert m.headers.get("Content-Length") == "7" and m.body == b"hello\r\n"
    frames, framer = stream(data, chunk=1)
    assert frames == [data] and framer.buffered == 0


@pytest.mark.parametrize("name", ["framing-no-content-length", "semantic-rfc2543-request"])
def test_missing_content_length(name: str) -> None:
    data = load_torture(name)
    m = parse_message(data)
    assert "Content-Length" not in m.headers
    assert m.body == data.split(b"\r\n\r\n", 1)[1]  # datagram rule: the rest is the body
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"RTP/AVP 0\r\n")
    with pytest.raises(SipContentLengthError) as info:
        StreamFramer().feed(data)
    assert info.value.header == "Content-Length"
    again = parse_message(bytes(m))
    assert again.headers.get("Content-Length") == str(len(m.body))
    assert again == m


@pytest.mark.parametrize(
    "name",
    [
        "invalid-duplicate-content-length",
        "invalid-negative-content-length",
        "invalid-huge-content-length",
        "invalid-content-length-empty",
    ],
)
def test_bad_content_length_cannot_be_framed(name: str) -> None:
    framer = StreamFramer()
    with pytest.raises(SipContentLengthError) as info:
        framer.feed(load_torture(name))
    assert info.value.header == "Content-Length"
    assert framer.buffered == 0
    with pytest.raises(SipContentLengthError):
        framer.feed(b"\r\n")


@pytest.mark.parametrize(
    "name",
    [
        "invalid-content-length-exceeds-body",
        "invalid-missing-blank-line-before-body",
        "invalid-truncated-header",
        "defect-no-blank-line",
    ],
)
def test_incomplete_messages_wait_for_more_on_a_stream(name: str) -> None:
    data = load_torture(name)
    frames, framer = stream(data)
    assert frames == [] and framer.error is None
    assert framer.buffered == len(data)


# --------------------------------------------------------------------------- accepted with defects


@pytest.mark.parametrize("name", sorted(ACCEPTED_WITH_DEFECT))
def test_liberally_accepted_messages_are_flagged(name: str) -> None:
    m = parse_message(load_torture(name))
    assert m.defects == [ACCEPTED_WITH_DEFECT[name]]
    again = parse_message(bytes(m))
    assert again == m
    if name == "defect-bad-date":
        # forwarded unchanged, so still flagged
        assert again.headers.get("Date") == "Thursday, 04-Jul-24 10:00:00 CEST"
        assert again.defects == m.defects
    else:
        assert again.defects == []


def test_request_line_whitespace_normalised_on_output() -> None:
    spaces = request("defect-request-line-extra-spaces")
    assert spaces.method == "SUBSCRIBE" and spaces.uri == SipUri.parse("sip:presence@buddy.example.org")
    assert bytes(spaces).startswith(b"SUBSCRIBE sip:presence@buddy.example.org SIP/2.0\r\n")
    trailing = request("defect-request-line-trailing-space")
    assert trailing.method == "NOTIFY" and trailing.uri.port == 5066
    assert bytes(trailing).startswith(b"NOTIFY sip:watcher@192.0.2.12:5066 SIP/2.0\r\n")


def test_missing_blank_line_is_added_on_output() -> None:
    m = request("defect-no-blank-line")
    assert m.body == b"" and m.call_id == "no-blank-line.201@192.0.2.201"
    assert bytes(m).endswith(b"Content-Length: 0\r\n\r\n")


# --------------------------------------------------------------------------- semantic


@pytest.mark.parametrize("name", SEMANTIC_OK)
def test_semantic_messages_parse(name: str) -> None:
    m = parse_message(load_torture(name))
    assert m.defects == []
    again = parse_message(bytes(m))
    assert again == m and again.defects == []


def test_branch_of_only_the_magic_cookie() -> None:
    m = request("semantic-branch-cookie-only")
    assert m.via.branch == "z9hG4bK"
    assert server_key_for_request(m) == ("z9hG4bK", "198.51.100.14", "OPTIONS")


def test_unknown_scheme_in_request_uri_is_opaque() -> None:
    # syntactically fine; the user agent answers 416 because it is not sip:/sips:
    m = request("semantic-unknown-scheme-request-uri")
    assert m.uri.scheme == "xmpp" and m.uri.opaque == "lobby@chat.example.org"
    assert not m.uri.is_sip
    assert m.to.uri == m.uri
    assert bytes(m).startswith(b"OPTIONS xmpp:lobby@chat.example.org SIP/2.0\r\n")


def test_unknown_extensions_auth_scheme_and_content_type() -> None:
    m = request("semantic-unknown-extensions")
    assert m.headers.get_all("Require") == ["x-teleport", "x-warp-drive"]
    assert m.headers.get_all("Proxy-Require") == ["x-quantum-route"]
    assert m.headers.get("Authorization") == 'Sigil lantern=amber, rune="three knots"'
    assert m.headers.get("Accept") == "application/x-holo-stream"
    assert m.content_type == "application/x-holo-stream"
    assert m.body == b"HOLO/0.9 frame=1 depth=deep\r\n"


def test_max_forwards_zero() -> None:
    assert request("semantic-max-forwards-zero").max_forwards == 0


def test_contact_parameter_placement() -> None:
    addr_spec, name_addr = request("semantic-contact-param-placement").contacts
    # addr-spec form: the parameters belong to the header field, not to the URI
    assert len(addr_spec.uri.params) == 0 and addr_spec.uri.transport is None
    assert addr_spec.params.items() == [("transport", "udp"), ("expires", "30")]
    # name-addr form: inside <> they are URI parameters
    assert name_addr.uri.params.items() == [("transport", "udp"), ("expires", "30")]
    assert len(name_addr.params) == 0 and name_addr.uri.transport == "udp"


def test_escaped_headers_in_contact_uri() -> None:
    contact = request("semantic-escaped-headers-in-contact").contact
    assert contact is not None
    assert contact.uri.headers == [("Subject", "Hello there"), ("Reply-To", "<sip:desk@example.net>")]
    assert (
        str(contact.uri)
        == "sip:mobile@example.net?Subject=Hello%20there&Reply-To=%3Csip:desk%40example.net%3E"
    )


def test_rfc2543_style_request() -> None:
    m = request("semantic-rfc2543-request")
    assert m.via.branch is None and m.from_tag is None and m.to_tag is None and m.max_forwards is None
    assert m.record_route[0].uri.maddr == "edge.example.org"
    # addr-spec form: ";user=phone" belongs to the header, not to the URI
    assert m.to.params["user"] == "phone" and "user" not in m.to.uri.params
    assert m.from_.params["user"] == "phone"
    assert m.uri.params["user"] == "phone"
    key = server_key_for_request(m)
    assert key[0].startswith("rfc2543|") and key[1:] == ("legacy.example.net:5060", "INVITE")


# --------------------------------------------------------------------------- invalid


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_messages_are_rejected(name: str) -> None:
    error, status, header = INVALID[name]
    with pytest.raises(SipParseError) as info:
        parse_message(load_torture(name))
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.header == header


def test_version_errors_are_505() -> None:
    for name in ("invalid-sip-version", "invalid-response-version"):
        with pytest.raises(SipVersionError) as info:
            parse_message(load_torture(name))
        assert info.value.status == 505 and "SIP/" in info.value.reason


def test_rejection_reasons_point_at_the_fault() -> None:
    expected = {
        "invalid-duplicate-to-compact": "To appears 2 times",
        "invalid-duplicate-call-id": "Call-ID appears 2 times",
        "invalid-cseq-method-mismatch": "does not match request method",
        "invalid-content-length-exceeds-body": "exceeds",
        "invalid-unterminated-quote": "unterminated quoted string",
        "invalid-request-uri-with-headers": "headers are not allowed in a Request-URI",
        "invalid-missing-blank-line-before-body": "malformed header line 'v=0'",
        "invalid-truncated-header": "ends inside the header section",
    }
    for name, text in expected.items():
        with pytest.raises(SipParseError) as info:
            parse_message(load_torture(name))
        assert text in info.value.reason, name
