"""Dialog state of the caller (RFC 3261 12.1.2, 12.2.1.1) and next-hop selection."""

from __future__ import annotations

import pytest

from gateway.sip.dialog import Dialog, DialogError, uri_next_hop
from gateway.sip.message import SipRequest, SipResponse, make_request, make_response
from gateway.sip.uri import SipUri


def invite(**headers: str) -> SipRequest:
    return make_request(
        "INVITE",
        "sip:+1415@carrier.example.com;transport=udp",
        from_="<sip:+1202@198.51.100.7>;tag=ours",
        to="<sip:+1415@carrier.example.com>",
        call_id="c1@198.51.100.7",
        cseq=7,
        via="SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx1",
        headers=list(headers.items()),
    )


def ok(
    request: SipRequest, *, contact: str | None = "<sip:callee@203.0.113.50:5070>", rr: tuple[str, ...] = ()
) -> SipResponse:
    headers = [("Record-Route", r) for r in rr]
    if contact is not None:
        headers.append(("Contact", contact))
    return make_response(request, 200, to_tag="theirs", headers=headers)


def test_dialog_from_2xx() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(
        request, ok(request, rr=("<sip:far.example;lr>", "<sip:near.example;lr>"))
    )
    assert (dialog.call_id, dialog.local_tag, dialog.remote_tag) == ("c1@198.51.100.7", "ours", "theirs")
    assert dialog.local_seq == 7 and dialog.remote_seq is None
    assert str(dialog.remote_target) == "sip:callee@203.0.113.50:5070"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:near.example;lr", "sip:far.example;lr"]
    assert str(dialog.remote_uri) == "<sip:+1415@carrier.example.com>;tag=theirs"


def test_contact_missing_or_not_sip_falls_back_to_request_uri() -> None:
    request = invite()
    for contact in (None, "<tel:+14155552671>"):
        dialog = Dialog.from_uac_response(request, ok(request, contact=contact))
        assert dialog.remote_target == request.uri


def test_contact_uri_headers_and_method_are_stripped_from_the_target() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(request, ok(request, contact="<sip:c@h;method=INVITE?Subject=x>"))
    assert str(dialog.remote_target) == "sip:c@h"


def test_request_without_from_tag_cannot_make_a_dialog() -> None:
    request = invite()
    request.headers.set("From", "<sip:+1202@198.51.100.7>")
    with pytest.raises(DialogError):
        Dialog.from_uac_response(request, ok(request))


def test_matching_needs_call_id_and_both_tags() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(request, ok(request))

    def incoming(from_tag: str, to_tag: str, call_id: str = "c1@198.51.100.7") -> SipRequest:
        return make_request(
            "BYE",
            "sip:gw@198.51.100.7",
            from_=f"<sip:x@y>;tag={from_tag}",
            to=f"<sip:z@w>;tag={to_tag}",
            call_id=call_id,
            cseq=1,
            via="SIP/2.0/UDP 203.0.113.50;branch=z9hG4bKq",
        )

    assert dialog.matches(incoming("theirs", "ours"))
    assert not dialog.matches(incoming("ours", "theirs"))
    assert not dialog.matches(incoming("theirs", "ours", call_id="other"))


def test_loose_routing() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(
        request, ok(request, rr=("<sip:p2.example;lr>", "<sip:10.0.0.1:5080;lr>"))
    )
    uri, routes = dialog.request_target()
    assert str(uri) == "sip:callee@203.0.113.50:5070"
    assert [str(r) for r in routes] == ["<sip:10.0.0.1:5080;lr>", "<sip:p2.example;lr>"]
    assert dialog.next_hop("udp", (("x", 1), "udp")) == (("10.0.0.1", 5080), "udp")
    bye = dialog.new_request("BYE", via="SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKb")
    assert bye.cseq == (8, "BYE") and dialog.local_seq == 8
    assert bye.headers.get_all("Route") == ["<sip:10.0.0.1:5080;lr>", "<sip:p2.example;lr>"]
    assert bye.to_tag == "theirs" and bye.from_tag == "ours"


def test_strict_routing() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(
        request, ok(request, rr=("<sip:p2.example;lr>", "<sip:strict.example;method=BYE>"))
    )
    assert dialog.strict_routing
    uri, routes = dialog.request_target()
    assert str(uri) == "sip:strict.example"
    assert [str(r.uri) for r in routes] == ["sip:p2.example;lr", "sip:callee@203.0.113.50:5070"]
    assert dialog.next_hop("tcp", (("x", 1), "udp")) == (("strict.example", 5060), "tcp")


def test_no_route_set_goes_to_the_remote_target() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(request, ok(request))
    assert dialog.next_hop("udp", (("x", 1), "udp")) == (("203.0.113.50", 5070), "udp")


def test_unroutable_target_uses_the_fallback() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(request, ok(request))
    dialog.remote_target = SipUri.parse("urn:service:sos")
    assert dialog.next_hop("udp", (("203.0.113.10", 5060), "tcp")) == (("203.0.113.10", 5060), "tcp")


def test_ack_keeps_invite_cseq_and_credentials() -> None:
    request = invite(**{"Proxy-Authorization": 'Digest username="u"', "Authorization": 'Digest username="v"'})
    dialog = Dialog.from_uac_response(request, ok(request))
    ack = dialog.ack(request, via="SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa")
    assert ack.cseq == (7, "ACK") and dialog.local_seq == 7
    assert ack.header("Proxy-Authorization") == 'Digest username="u"'
    assert ack.header("Authorization") == 'Digest username="v"'
    assert ack.body == b""


def test_remote_cseq_must_not_go_backwards() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(request, ok(request))

    def req(n: int) -> SipRequest:
        return make_request(
            "INFO",
            "sip:gw@h",
            from_="<sip:a@b>;tag=theirs",
            to="<sip:c@d>;tag=ours",
            call_id="c1@198.51.100.7",
            cseq=n,
            via="SIP/2.0/UDP h;branch=z9hG4bKr",
        )

    assert dialog.accept_remote_cseq(req(5)) and dialog.remote_seq == 5
    assert dialog.accept_remote_cseq(req(5))
    assert not dialog.accept_remote_cseq(req(4)) and dialog.remote_seq == 5
    assert dialog.accept_remote_cseq(req(9)) and dialog.remote_seq == 9


def test_target_refresh() -> None:
    request = invite()
    dialog = Dialog.from_uac_response(request, ok(request))
    refresh = make_response(
        request, 200, to_tag="theirs", headers=[("Contact", "<sip:moved@203.0.113.99:5090>")]
    )
    dialog.refresh_target(refresh)
    assert str(dialog.remote_target) == "sip:moved@203.0.113.99:5090"
    dialog.refresh_target(make_response(request, 200, to_tag="theirs"))  # no Contact: unchanged
    assert str(dialog.remote_target) == "sip:moved@203.0.113.99:5090"


@pytest.mark.parametrize(
    ("uri", "default", "expected"),
    [
        ("sip:a@203.0.113.1", "udp", (("203.0.113.1", 5060), "udp")),
        ("sip:a@203.0.113.1:5080;transport=TCP", "udp", (("203.0.113.1", 5080), "tcp")),
        ("sip:a@203.0.113.1;transport=udp", "tcp", (("203.0.113.1", 5060), "udp")),
        ("sip:a@203.0.113.1;transport=tls", "tcp", (("203.0.113.1", 5060), "tcp")),
        ("sips:a@secure.example", "tcp", (("secure.example", 5061), "tcp")),
        ("sip:a@[2001:db8::1]:5062", "udp", (("2001:db8::1", 5062), "udp")),
        ("sip:a@203.0.113.1;maddr=203.0.113.2", "udp", (("203.0.113.2", 5060), "udp")),
        ("tel:+14155552671", "udp", None),
    ],
)
def test_uri_next_hop(uri: str, default: str, expected: object) -> None:
    assert uri_next_hop(SipUri.parse(uri), default) == expected  # type: ignore[arg-type]
