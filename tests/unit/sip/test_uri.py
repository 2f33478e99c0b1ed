"""SipUri parsing, serialisation and RFC 3261 19.1.4 comparison."""

from __future__ import annotations

import pytest

from gateway.sip.errors import SipUriError
from gateway.sip.uri import Params, SipUri


def test_full_sip_uri() -> None:
    uri = SipUri.parse(
        "sips:alice:secret@Atlanta.Example.com:5061;transport=TLS;lr;maddr=239.255.255.1?subject=hi&x=1"
    )
    assert uri.scheme == "sips" and uri.is_secure and uri.is_sip
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "secret", "Atlanta.Example.com", 5061)
    assert uri.transport == "tls" and uri.lr and uri.maddr == "239.255.255.1"
    assert uri.params.names() == ["transport", "lr", "maddr"]
    assert uri.headers == [("subject", "hi"), ("x", "1")]
    assert (
        str(uri)
        == "sips:alice:secret@Atlanta.Example.com:5061;transport=TLS;lr;maddr=239.255.255.1?subject=hi&x=1"
    )


def test_host_only_and_ipv6() -> None:
    uri = SipUri.parse("sip:[2001:db8::10]:5070;transport=tcp")
    assert uri.host == "[2001:db8::10]" and uri.host_address == "2001:db8::10" and uri.port == 5070
    assert uri.user is None
    assert str(uri) == "sip:[2001:db8::10]:5070;transport=tcp"
    assert str(SipUri("sip", host="2001:db8::1")) == "sip:[2001:db8::1]"
    ipv4 = SipUri.parse("sip:192.0.2.4")
    assert ipv4.host == "192.0.2.4" and ipv4.port is None


def test_escaping_round_trip() -> None:
    uri = SipUri.parse("sip:%61lice%20smith@example.com;na%6De=v%25x?h%41=a%3Cb%3E")
    assert uri.user == "alice smith"
    assert uri.params["name"] == "v%x"
    assert uri.headers == [("hA", "a<b>")]
    assert str(uri) == "sip:alice%20smith@example.com;name=v%25x?hA=a%3Cb%3E"
    assert SipUri.parse(str(uri)) == uri
    built = SipUri("sip", host="example.com", user="a@b:c", params=Params([("x", "é")]))
    assert str(built) == "sip:a%40b%3Ac@example.com;x=%C3%A9"
    assert SipUri.parse(str(built)).params["x"] == "é"


def test_telephone_subscriber_in_sip_user() -> None:
    uri = SipUri.parse("sip:+1-212-555-1212;isub=1411@gateway.example.com;user=phone")
    assert uri.user == "+1-212-555-1212;isub=1411" and uri.params["user"] == "phone"


def test_tel_uri() -> None:
    tel = SipUri.parse("tel:+1-201-555-0123;ext=7;phone-context=+1")
    assert tel.scheme == "tel" and tel.user == "+1-201-555-0123" and tel.host == ""
    assert tel.params["ext"] == "7"
    assert str(tel) == "tel:+1-201-555-0123;ext=7;phone-context=+1"
    assert tel == SipUri.parse("tel:+1.201.555.0123;phone-context=+1;ext=7")
    assert tel != SipUri.parse("tel:+1-201-555-0124;ext=7;phone-context=+1")
    assert SipUri.parse("TEL:7042;phone-context=example.com").scheme == "tel"


def test_other_schemes_are_opaque() -> None:
    urn = SipUri.parse("urn:service:sos")
    assert urn.scheme == "urn" and urn.opaque == "service:sos" and str(urn) == "urn:service:sos"
    assert urn == SipUri.parse("URN:service:sos") and urn != SipUri.parse("urn:service:SOS")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # RFC 3261 19.1.4 equivalent pairs
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
    ],
)
def test_rfc3261_equal_uris(a: str, b: str) -> None:
    assert SipUri.parse(a) == SipUri.parse(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # RFC 3261 19.1.4 non-equivalent pairs
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
        ("sip:atlanta.com;maddr=192.0.2.1", "sip:atlanta.com"),
    ],
)
def test_rfc3261_unequal_uris(a: str, b: str) -> None:
    assert SipUri.parse(a) != SipUri.parse(b)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        "sip:",
        "<sip:a@b>",
        "1sip:a@b",
        "sip:@example.com",
        "sip:a@",
        "sip:a@exa mple.com",
        "sip:a@example.com:",
        "sip:a@example.com:70000",
        "sip:a@example.com:5x",
        "sip:a@example.com;",
        "sip:a@example.com;;lr",
        "sip:a@example.com;=x",
        "sip:a@example.com?",
        "sip:a@example.com?x",
        "sip:a%zz@example.com",
        "sip:a%4@example.com",
        "sip:a<b@example.com",
        "sip:[2001:db8::1",
        "sip:[2001:db8::1]x",
        "sip:[zz::1]",
        "sip:a@-bad.example.com",
        "tel:",
        "tel:12;",
        "tel:12 34",
        "http:",
        "http://a b",
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(SipUriError):
        SipUri.parse(text)


def test_params_multimap() -> None:
    p = Params([("Transport", "udp"), ("lr", None)])
    assert p.get("transport") == "udp" and "LR" in p and p["lr"] is None and p.get("x", "d") == "d"
    p.set("TRANSPORT", "tcp")
    assert p.items() == [("Transport", "tcp"), ("lr", None)]
    p.set("ttl", "1")
    p.remove("lr")
    assert list(p) == ["Transport", "ttl"] and len(p) == 2
    with pytest.raises(KeyError):
        p["missing"]
    assert Params([("a", "1"), ("B", None)]) == Params([("b", None), ("A", "1")])


def test_copy_is_independent() -> None:
    uri = SipUri.parse("sip:a@b;x=1?h=v")
    other = uri.copy()
    other.params.set("x", "2")
    other.headers.append(("k", "w"))
    assert uri.params["x"] == "1" and uri.headers == [("h", "v")]
