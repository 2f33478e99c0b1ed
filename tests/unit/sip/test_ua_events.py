"""The user agent's API types (gateway.sip.ua_events), as the rest of the gateway imports them."""

from __future__ import annotations

import pytest

from gateway.sip import ua_events, useragent
from gateway.sip.dialog import Dialog
from gateway.sip.headers import NameAddr
from gateway.sip.timers import TimerConfig
from gateway.sip.uri import SipUri
from gateway.sip.useragent import CallEvent, LocalMedia, Trying

# What gateway.calls, gateway.sip.stack, the tests and the benchmark import from useragent.
USERAGENT_API = [
    "Address",
    "Answered",
    "CallEvent",
    "CallEventBody",
    "CallOutcome",
    "DtmfReceived",
    "Ended",
    "LegSnapshot",
    "LegUpdated",
    "LocalMedia",
    "MediaUpdated",
    "OutboundCallParams",
    "Released",
    "Ringing",
    "SipUserAgent",
    "Transmit",
    "Transport",
    "Trying",
    "UaConfig",
    "UaOutput",
    "UaStats",
    "UaUsageError",
    "trust_nobody",
]


def test_useragent_exports_the_same_names() -> None:
    assert sorted(useragent.__all__) == USERAGENT_API


@pytest.mark.parametrize("name", sorted(set(USERAGENT_API) & set(ua_events.__all__)))
def test_the_types_are_those_of_ua_events(name: str) -> None:
    assert getattr(useragent, name) is getattr(ua_events, name)


def test_values() -> None:
    media = LocalMedia(address="198.51.100.7", rtp_port=20000)
    assert (media.codecs, media.dtmf_payload_type, media.ptime) == (("PCMU", "PCMA"), 101, 20)
    assert CallEvent("call_1", Trying("abc@h")) == CallEvent("call_1", Trying("abc@h"))
    assert "INVITE" in ua_events.ALLOW and "REFER" in ua_events.KNOWN_UNSUPPORTED
    assert ua_events.SUPPORTED == "timer"


SETTINGS = ua_events.CallSettings(
    local_host="2001:db8::7", udp_port=5060, tcp_port=None, user_agent="orbit-test", timers=TimerConfig()
)


def test_via_names_us_with_a_new_branch() -> None:
    first, second = SETTINGS.via("udp"), SETTINGS.via("udp")
    head, _, branch = first.partition(";branch=")
    assert head == "SIP/2.0/UDP [2001:db8::7]:5060"
    assert branch.startswith("z9hG4bK") and branch.endswith(";rport")
    assert first != second


def _dialog(route: str | None, target: str = "sip:callee@203.0.113.50:5070") -> Dialog:
    return Dialog(
        call_id="c1@h",
        local_tag="gw1",
        remote_tag="callee1",
        local_uri=NameAddr.parse("<sip:gw@198.51.100.7>;tag=gw1"),
        remote_uri=NameAddr.parse("<sip:callee@carrier.example.com>;tag=callee1"),
        local_seq=1,
        remote_target=SipUri.parse(target),
        route_set=[NameAddr.parse(route)] if route else [],
    )


def test_next_hop_follows_the_dialog_on_a_transport_we_listen_on() -> None:
    trunk = ("203.0.113.10", 5060)
    assert SETTINGS.next_hop(_dialog(None), trunk, "udp") == (("203.0.113.50", 5070), "udp")
    assert SETTINGS.next_hop(_dialog("<sip:10.0.0.1:5080;lr>"), trunk, "udp") == (("10.0.0.1", 5080), "udp")
    # The proxy asks for TCP, which we do not listen on here: the call's transport it is.
    assert SETTINGS.next_hop(_dialog("<sip:10.0.0.1:5080;lr;transport=tcp>"), trunk, "udp") == (
        ("10.0.0.1", 5080),
        "udp",
    )
    assert SETTINGS.next_hop(_dialog(None, target="tel:+14155552671"), trunk, "udp") == (trunk, "udp")
