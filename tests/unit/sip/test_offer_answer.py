"""SDP offer/answer (gateway.sip.offer_answer)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.offer_answer import SdpNegotiationError, answer_offer, build_offer, negotiate_answer
from gateway.sip.sdp import (
    Attribute,
    MediaDirection,
    NegotiatedMedia,
    SdpError,
    SdpParseError,
    SessionDescription,
)
from tests.support.sdp_samples import (
    ASTERISK,
    ASTERISK_HOLD,
    ASTERISK_INACTIVE,
    BARESIP,
    CISCO_HOLD,
    SIPP_DEFAULT,
    crlf,
)

# --------------------------------------------------------------------------- offer


def test_offer_exact_text() -> None:
    offer = build_offer(session_id=3724394400, version=1, address="198.51.100.20", rtp_port=40000)
    assert offer.serialize() == crlf("""
v=0
o=- 3724394400 1 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")


def test_offer_options() -> None:
    offer = build_offer(
        7,
        2,
        "2001:db8::5",
        30000,
        codecs=["pcma", "PCMU"],
        dtmf_payload_type=None,
        ptime=30,
        direction=MediaDirection.SENDONLY,
        username="gw",
    )
    assert offer.serialize() == crlf("""
v=0
o=gw 7 2 IN IP6 2001:db8::5
s=-
c=IN IP6 2001:db8::5
t=0 0
m=audio 30000 RTP/AVP 8 0
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=ptime:30
a=sendonly
""")


@pytest.mark.parametrize(
    "kwargs",
    [{"codecs": ["opus"]}, {"codecs": []}, {"dtmf_payload_type": 13}, {"direction": "both"}],
)
def test_offer_misuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(SdpError) as info:
        build_offer(1, 1, "192.0.2.1", 4000, **kwargs)  # type: ignore[arg-type]
    assert not isinstance(info.value, SdpNegotiationError | SdpParseError)


# --------------------------------------------------------------------------- negotiate_answer


OFFER = build_offer(100, 1, "198.51.100.20", 40000)


def answer_sdp(
    media: str, session_extra: str = "", connection: str = "c=IN IP4 203.0.113.9\n"
) -> SessionDescription:
    return SessionDescription.parse(
        f"v=0\no=- 5 5 IN IP4 203.0.113.9\ns=-\n{connection}t=0 0\n{session_extra}{media}"
    )


def test_answer_from_sipp() -> None:
    media = negotiate_answer(OFFER, SessionDescription.parse(SIPP_DEFAULT))
    assert (media.remote_address, media.remote_port, media.remote_rtcp_port) == ("127.0.0.1", 6000, 6001)
    assert (media.codec, media.payload_type, media.local_payload_type, media.clock_rate) == (
        "PCMU",
        0,
        0,
        8000,
    )
    assert media.telephone_event_pt is None
    assert media.local_telephone_event_pt == 101
    assert media.ptime == 20
    assert media.direction is MediaDirection.SENDRECV
    assert not media.remote_hold and not media.rejected
    assert media.can_send and media.can_receive


def test_answer_codec_is_the_first_in_the_answer_that_we_offered() -> None:
    media = negotiate_answer(OFFER, SessionDescription.parse(ASTERISK))
    assert (media.codec, media.payload_type) == ("PCMA", 8)
    assert media.telephone_event_pt == 101
    assert media.maxptime == 150
    assert media.remote_address == "203.0.113.5"


def test_answer_with_remote_telephone_event_96_and_rtpmap_names() -> None:
    answer = answer_sdp(
        "m=audio 7078 RTP/AVP 18 0 96\n"
        "a=rtpmap:18 G729/8000\n"
        "a=rtpmap:0 pcmu/8000\n"
        "a=rtpmap:96 telephone-event/8000\n"
        "a=fmtp:96 0-15\n"
        "a=ptime:30\n"
    )
    media = negotiate_answer(OFFER, answer)
    assert (media.codec, media.payload_type) == ("PCMU", 0)
    assert media.telephone_event_pt == 96 and media.local_telephone_event_pt == 101
    assert media.ptime == 30


def test_answer_dynamic_payload_type_for_static_codec_name() -> None:
    answer = answer_sdp("m=audio 7078 RTP/AVP 110\na=rtpmap:110 PCMA/8000\n")
    media = negotiate_answer(OFFER, answer)
    assert (media.codec, media.payload_type, media.local_payload_type) == ("PCMA", 110, 8)


def test_answer_media_level_connection_wins() -> None:
    answer = answer_sdp("m=audio 7078 RTP/AVP 0\nc=IN IP4 10.1.2.3\na=rtcp:7090 IN IP4 10.1.2.4\n")
    media = negotiate_answer(OFFER, answer)
    assert media.remote_address == "10.1.2.3"
    assert media.remote_rtcp_port == 7090


def test_answer_without_common_codec_is_488() -> None:
    answer = answer_sdp(
        "m=audio 7078 RTP/AVP 18 101\na=rtpmap:18 G729/8000\na=rtpmap:101 telephone-event/8000\n"
    )
    with pytest.raises(SdpNegotiationError) as info:
        negotiate_answer(OFFER, answer)
    assert info.value.sip_status == 488
    assert info.value.warning_code == 305


def test_answer_port_zero_is_rejected_media() -> None:
    media = negotiate_answer(OFFER, answer_sdp("m=audio 0 RTP/AVP 0\n"))
    assert media.rejected
    assert media.direction is MediaDirection.INACTIVE
    assert not media.can_send and not media.can_receive
    assert media.remote_port == 0
    # Even a rejected stream that names nothing we offered is not a negotiation error.
    assert negotiate_answer(OFFER, answer_sdp("m=audio 0 RTP/AVP 18\n")).rejected


@pytest.mark.parametrize(
    ("attribute", "connection", "direction", "hold"),
    [
        ("a=sendrecv\n", "203.0.113.9", MediaDirection.SENDRECV, False),
        ("", "203.0.113.9", MediaDirection.SENDRECV, False),
        ("a=sendonly\n", "203.0.113.9", MediaDirection.RECVONLY, True),
        ("a=recvonly\n", "203.0.113.9", MediaDirection.SENDONLY, False),
        ("a=inactive\n", "203.0.113.9", MediaDirection.INACTIVE, True),
        ("", "0.0.0.0", MediaDirection.RECVONLY, True),
        ("a=sendonly\n", "0.0.0.0", MediaDirection.RECVONLY, True),
    ],
)
def test_answer_direction(attribute: str, connection: str, direction: MediaDirection, hold: bool) -> None:
    answer = answer_sdp(f"m=audio 7078 RTP/AVP 0\n{attribute}", connection=f"c=IN IP4 {connection}\n")
    media = negotiate_answer(OFFER, answer)
    assert media.direction is direction
    assert media.remote_hold is hold


def test_answer_session_level_direction() -> None:
    answer = answer_sdp("m=audio 7078 RTP/AVP 0\n", session_extra="a=sendonly\n")
    assert negotiate_answer(OFFER, answer).direction is MediaDirection.RECVONLY


def test_answer_to_our_hold_offer() -> None:
    offer = build_offer(100, 2, "198.51.100.20", 40000, direction="sendonly")
    media = negotiate_answer(offer, answer_sdp("m=audio 7078 RTP/AVP 0\na=recvonly\n"))
    assert media.direction is MediaDirection.SENDONLY
    assert not media.remote_hold
    # A peer that ignores our hold still cannot make us receive.
    assert (
        negotiate_answer(offer, answer_sdp("m=audio 7078 RTP/AVP 0\n")).direction is MediaDirection.SENDONLY
    )


def test_answer_rtcp_mux_only_when_both_sides_want_it() -> None:
    answer = answer_sdp("m=audio 7078 RTP/AVP 0\na=rtcp-mux\n")
    assert not negotiate_answer(OFFER, answer).rtcp_mux
    offer = build_offer(100, 1, "198.51.100.20", 40000)
    offer.media[0].attributes.append(Attribute("rtcp-mux"))
    media = negotiate_answer(offer, answer)
    assert media.rtcp_mux and media.remote_rtcp_port == 7078


@pytest.mark.parametrize(
    ("answer", "warning"),
    [
        ("m=audio 7078 RTP/SAVP 0\n", 302),
        ("m=video 7078 RTP/AVP 0\n", 304),
        ("", 304),
    ],
)
def test_answer_structural_mismatch(answer: str, warning: int) -> None:
    with pytest.raises(SdpNegotiationError) as info:
        negotiate_answer(OFFER, answer_sdp(answer))
    assert info.value.warning_code == warning
    assert info.value.sip_status == 488


@pytest.mark.parametrize(
    ("code", "warning"),
    [
        (302, '302 198.51.100.7 "Incompatible transport protocol"'),
        (304, '304 198.51.100.7 "Media type not available"'),
        (305, '305 198.51.100.7 "Incompatible media format"'),
        (None, None),
        (399, None),
    ],
)
def test_negotiation_error_gives_its_warning(code: int | None, warning: str | None) -> None:
    error = SdpNegotiationError("no audio in common", warning_code=code)
    assert error.status == error.sip_status == 488
    assert error.warning("198.51.100.7") == warning


def test_answer_without_any_connection_address() -> None:
    with pytest.raises(SdpNegotiationError):
        negotiate_answer(OFFER, answer_sdp("m=audio 7078 RTP/AVP 0\n", connection=""))


# --------------------------------------------------------------------------- answer_offer


def answer_to(text: str) -> tuple[SessionDescription, NegotiatedMedia]:
    return answer_offer(SessionDescription.parse(text), "198.51.100.20", 40000, ["PCMU", "PCMA"], 77, 3)


def test_answer_baresip_offer() -> None:
    offer = SessionDescription.parse(BARESIP)
    answer, media = answer_offer(offer, "198.51.100.20", 40000, ["PCMA", "PCMU"], 77, 3)
    assert answer.serialize() == crlf("""
v=0
o=- 77 3 IN IP4 198.51.100.20
s=-
c=IN IP4 198.51.100.20
t=0 0
m=audio 40000 RTP/AVP 0 102
a=rtpmap:0 PCMU/8000
a=rtpmap:102 telephone-event/8000
a=fmtp:102 0-15
a=ptime:20
a=sendrecv
m=video 0 RTP/AVP 97
""")
    # Their preference order wins over ours; their telephone-event number is kept.
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMU", 0, 102)
    assert (media.remote_address, media.remote_port, media.remote_rtcp_port) == ("192.168.1.20", 10094, 10095)
    assert media.direction is MediaDirection.SENDRECV and media.media_index == 0


def test_answer_offer_with_g722_support() -> None:
    answer, media = answer_offer(
        SessionDescription.parse(BARESIP), "198.51.100.20", 40000, ["G722", "PCMU"], 1, 1
    )
    assert (media.codec, media.payload_type, media.clock_rate) == ("G722", 9, 8000)
    assert answer.media[0].formats == ["9", "102"]


@pytest.mark.parametrize(
    ("offer", "ours", "hold"),
    [
        (ASTERISK, MediaDirection.SENDRECV, False),
        (ASTERISK_HOLD, MediaDirection.RECVONLY, True),
        (ASTERISK_INACTIVE, MediaDirection.INACTIVE, True),
        (CISCO_HOLD, MediaDirection.RECVONLY, True),
        (ASTERISK.replace("a=sendrecv", "a=recvonly"), MediaDirection.SENDONLY, False),
    ],
)
def test_answer_offer_mirrors_direction(offer: str, ours: MediaDirection, hold: bool) -> None:
    answer, media = answer_offer(
        SessionDescription.parse(offer), "198.51.100.20", 40000, ["PCMU", "PCMA"], 1, 2
    )
    assert media.direction is ours
    assert answer.media[0].direction is ours
    assert media.remote_hold is hold
    assert (media.codec, media.telephone_event_pt) == (
        ("PCMA", 101) if "Asterisk" in offer else ("PCMU", 101)
    )


def test_answer_offer_when_we_hold_them() -> None:
    _, media = answer_offer(
        SessionDescription.parse(ASTERISK), "198.51.100.20", 40000, ["PCMA"], 1, 2, direction="sendonly"
    )
    assert media.direction is MediaDirection.SENDONLY
    _, both_hold = answer_offer(
        SessionDescription.parse(ASTERISK_HOLD), "198.51.100.20", 40000, ["PCMA"], 1, 2, direction="sendonly"
    )
    assert both_hold.direction is MediaDirection.INACTIVE


def test_answer_offer_fmtp_and_event_intersection() -> None:
    offer = SIPP_DEFAULT.replace("RTP/AVP 0", "RTP/AVP 18 0 100").replace(
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-11,16,32-40\r\na=ptime:40",
    )
    answer, media = answer_offer(
        SessionDescription.parse(offer), "198.51.100.20", 40000, ["G729", "PCMU"], 1, 1
    )
    audio = answer.media[0]
    assert audio.fmtp(18) == "annexb=no"
    assert audio.fmtp(100) == "0-11,16"
    assert media.ptime == 40
    # Without fmtp the offerer means events 0-15.
    no_fmtp = offer.replace("a=fmtp:100 0-11,16,32-40\r\n", "")
    assert no_fmtp != offer
    answer2, _ = answer_offer(SessionDescription.parse(no_fmtp), "198.51.100.20", 40000, ["PCMU"], 1, 1)
    assert answer2.media[0].fmtp(100) == "0-15"
    # Events we do not share drop telephone-event from the answer.
    odd = offer.replace("0-11,16,32-40", "32-40")
    answer3, media3 = answer_offer(SessionDescription.parse(odd), "198.51.100.20", 40000, ["PCMU"], 1, 1)
    assert answer3.media[0].formats == ["0"] and media3.telephone_event_pt is None


def test_answer_offer_without_common_codec_is_488() -> None:
    with pytest.raises(SdpNegotiationError) as info:
        answer_offer(SessionDescription.parse(ASTERISK), "198.51.100.20", 40000, ["G729"], 1, 1)
    assert (info.value.sip_status, info.value.warning_code) == (488, 305)


def test_answer_offer_srtp_only_is_488() -> None:
    with pytest.raises(SdpNegotiationError) as info:
        answer_to(ASTERISK.replace("RTP/AVP", "RTP/SAVP"))
    assert info.value.warning_code == 302


def test_answer_offer_without_audio_is_488() -> None:
    video_only = BARESIP[: BARESIP.index("m=audio")] + BARESIP[BARESIP.index("m=video") :]
    with pytest.raises(SdpNegotiationError) as info:
        answer_to(video_only)
    assert info.value.warning_code == 304


def test_answer_offer_skips_an_unusable_audio_stream_for_a_later_one() -> None:
    two = SIPP_DEFAULT.replace("m=audio 6000 RTP/AVP 0", "m=audio 5000 RTP/SAVP 0\r\nm=audio 6000 RTP/AVP 0")
    answer, media = answer_to(two)
    assert [m.port for m in answer.media] == [0, 40000]
    assert media.media_index == 1


def test_answer_offer_audio_disabled_by_offerer() -> None:
    answer, media = answer_to(ASTERISK.replace("m=audio 13548", "m=audio 0"))
    assert answer.media[0].port == 0
    assert media.rejected and media.direction is MediaDirection.INACTIVE


def test_answer_offer_copies_timing_and_parses_back() -> None:
    offer = SIPP_DEFAULT.replace("t=0 0", "t=3034423619 0")
    answer, _ = answer_to(offer)
    assert SessionDescription.parse(answer.serialize()).times[0].start == 3034423619


def test_answer_offer_rtcp_mux() -> None:
    offer = BARESIP.replace("a=rtcp-rsize", "a=rtcp-mux")
    answer, media = answer_offer(
        SessionDescription.parse(offer), "198.51.100.20", 40000, ["PCMU"], 1, 1, rtcp_mux=True
    )
    assert answer.media[0].rtcp_mux and media.rtcp_mux and media.remote_rtcp_port == 10094
    _, plain = answer_offer(SessionDescription.parse(offer), "198.51.100.20", 40000, ["PCMU"], 1, 1)
    assert not plain.rtcp_mux


def test_both_ends_agree() -> None:
    # Our offer answered by another instance of this module, then read back by us.
    offer = build_offer(1, 1, "198.51.100.20", 40000, codecs=["PCMA", "PCMU"], dtmf_payload_type=101)
    answer, theirs = answer_offer(offer, "203.0.113.9", 50000, ["PCMU", "PCMA"], 9, 1)
    ours = negotiate_answer(offer, answer)
    assert ours.codec == theirs.codec == "PCMA"
    assert ours.telephone_event_pt == theirs.telephone_event_pt == 101
    assert (ours.remote_address, ours.remote_port) == ("203.0.113.9", 50000)
    assert (theirs.remote_address, theirs.remote_port) == ("198.51.100.20", 40000)


@given(
    codecs=st.lists(
        st.sampled_from(["PCMU", "PCMA", "G722", "G729", "GSM"]), min_size=1, max_size=5, unique=True
    ),
    supported=st.lists(
        st.sampled_from(["PCMU", "PCMA", "G722", "G729", "GSM"]), min_size=1, max_size=5, unique=True
    ),
    dtmf=st.one_of(st.none(), st.integers(96, 127)),
    port=st.integers(1024, 65534),
    direction=st.sampled_from(list(MediaDirection)),
    session_id=st.integers(0, 2**63),
)
def test_offer_answer_properties(
    codecs: list[str],
    supported: list[str],
    dtmf: int | None,
    port: int,
    direction: MediaDirection,
    session_id: int,
) -> None:
    offer = build_offer(
        session_id, 1, "192.0.2.1", port, codecs=codecs, dtmf_payload_type=dtmf, direction=direction
    )
    text = offer.serialize()
    assert SessionDescription.parse(text).serialize() == text
    common = [c for c in codecs if c in supported]
    if not common:
        with pytest.raises(SdpNegotiationError):
            answer_offer(offer, "192.0.2.2", 6000, supported, 2, 1)
        return
    answer, theirs = answer_offer(offer, "192.0.2.2", 6000, supported, 2, 1)
    ours = negotiate_answer(offer, SessionDescription.parse(answer.serialize()))
    assert ours.codec == theirs.codec == common[0]
    assert ours.telephone_event_pt == dtmf
    assert ours.direction is direction
    assert theirs.direction is direction.reversed()
