"""Our side of a call's SDP: the offer, answers and o= versions (gateway.sip.call_sdp)."""

from __future__ import annotations

import pytest

from gateway.sip.call_sdp import LocalSdp, negotiate, sdp_body
from gateway.sip.message import make_request
from gateway.sip.offer_answer import SdpNegotiationError
from gateway.sip.sdp import SdpError, SdpParseError, SessionDescription
from gateway.sip.useragent import LocalMedia
from tests.support.sip_harness import LOCAL_HOST, answer_sdp

MEDIA = LocalMedia(address=LOCAL_HOST, rtp_port=20000)


def test_the_offer_opens_the_session() -> None:
    sdp = LocalSdp(MEDIA)
    origin = sdp.offer.origin
    assert 1 <= origin.session_id < 2**31 and origin.session_version == origin.session_id
    assert sdp.last is sdp.offer and sdp.last_bytes == sdp.offer.to_bytes()
    audio = sdp.offer.audio()
    assert audio is not None and audio.port == 20000 and audio.formats == ["0", "8", "101"]


def test_each_answer_and_new_offer_is_the_next_version() -> None:
    sdp = LocalSdp(MEDIA)
    first = sdp.offer.origin.session_version
    media = sdp.answer(answer_sdp(formats="8 101"))
    assert media.codec == "PCMA" and media.remote_port == 40000
    assert sdp.last.origin.session_version == first + 1 and sdp.last is not sdp.offer
    assert SessionDescription.parse(sdp.last_bytes).audio() is not None
    offer = sdp.new_offer()
    assert offer is sdp.last and offer.origin.session_version == first + 2
    assert offer.origin.session_id == sdp.offer.origin.session_id


@pytest.mark.parametrize(
    ("body", "error"),
    [(answer_sdp(formats="18"), SdpNegotiationError), (b"v=0\r\nnot sdp\r\n", SdpParseError)],
)
def test_an_offer_we_cannot_answer_changes_nothing(body: bytes, error: type[SdpError]) -> None:
    sdp = LocalSdp(MEDIA)
    with pytest.raises(error):
        sdp.answer(body)
    assert sdp.last is sdp.offer and sdp.new_offer().origin.session_version == sdp.offer.origin.session_version + 1


def test_media_we_cannot_offer() -> None:
    with pytest.raises(SdpError):
        LocalSdp(LocalMedia(address=LOCAL_HOST, rtp_port=20000, codecs=("OPUS",)))


def test_answers_to_our_offer() -> None:
    offer = LocalSdp(MEDIA).offer
    media = negotiate(offer, answer_sdp(port=41000))
    assert media is not None and media.remote_port == 41000
    assert negotiate(offer, answer_sdp(port=0)) is None  # audio refused
    assert negotiate(offer, answer_sdp(formats="18")) is None  # nothing in common
    assert negotiate(offer, b"garbage") is None


def test_sdp_body() -> None:
    request = make_request(
        "INVITE",
        "sip:gw@198.51.100.7",
        from_="<sip:a@example.com>;tag=1",
        to="<sip:gw@198.51.100.7>",
        call_id="c@x",
        cseq=1,
        via="SIP/2.0/UDP 203.0.113.50;branch=z9hG4bK-sdp",
        body=answer_sdp(),
        content_type="application/sdp",
    )
    assert sdp_body(request) == answer_sdp()
    request.headers.set("Content-Type", "application/xml")
    assert sdp_body(request) is None
    request.headers.set("Content-Type", "application/sdp")
    request.body = b"\r\n"
    assert sdp_body(request) is None
