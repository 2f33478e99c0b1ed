from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.sdp import (
    Attribute,
    Connection,
    MediaDirection,
    NegotiatedMedia,
    RtpMap,
    SdpError,
    SdpNegotiationError,
    SdpParseError,
    SessionDescription,
    answer_offer,
    build_offer,
    negotiate_answer,
)


def crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


SIPP_DEFAULT = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

BARESIP = crlf("""
v=0
o=- 1193452208 2730547447 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
m=audio 10094 RTP/AVP 96 9 0 8 101 102
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/48000
a=rtpmap:102 telephone-event/8000
a=fmtp:102 0-15
a=rtcp:10095
a=rtcp-rsize
a=sendrecv
a=label:1
a=ssrc:3486474396 cname:5c2e0f2d-8e63-4b5a-b2d1-2b7f7ba3c1c4
a=mid:0
a=ptime:20
m=video 10096 RTP/AVP 97
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=0;profile-level-id=42e01f
a=sendrecv
""")

ASTERISK = crlf("""
v=0
o=- 1880460286 1880460288 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
m=audio 13548 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

ASTERISK_HOLD = ASTERISK.replace("a=sendrecv", "a=sendonly").replace("1880460288", "1880460289")
ASTERISK_INACTIVE = ASTERISK.replace("a=sendrecv", "a=inactive")

CISCO_HOLD = crlf("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4963 2296 IN IP4 198.51.100.7
s=SIP Call
c=IN IP4 0.0.0.0
t=0 0
m=audio 18012 RTP/AVP 0 101
c=IN IP4 0.0.0.0
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
""")

# RFC 4566 section 5 example plus the rarer line types and an unknown one.
EVERY_LINE = crlf("""
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
b=CT:128
t=2873397496 2873404696
r=604800 3600 0 90000
z=2882844526 -1h 2898848070 0
k=prompt
a=recvonly
y=0123456789
m=audio 49170/2 RTP/AVP 0
i=voice
c=IN IP4 224.2.17.13/127
b=AS:64
k=clear:secret
a=custom-flag
a=x-vendor:some value with: colons
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
m=application 9 TCP/MSRP *
a=accept-types:text/plain
""")

FIXTURES = [SIPP_DEFAULT, BARESIP, ASTERISK, ASTERISK_HOLD, ASTERISK_INACTIVE, CISCO_HOLD, EVERY_LINE]


# --------------------------------------------------------------------------- parsing


def test_parse_sipp_default() -> None:
    sdp = SessionDescription.parse(SIPP_DEFAULT)
    assert sdp.version == 0
    assert (sdp.origin.username, sdp.origin.session_id, sdp.origin.session_version) == (
        "user1",
        53655765,
        2353687637,
    )
    assert (sdp.origin.nettype, sdp.origin.addrtype, sdp.origin.address) == ("IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("127.0.0.1")
    audio = sdp.audio()
    assert audio is not None
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 6000, "RTP/AVP", ["0"])
    assert audio.rtpmaps() == {0: RtpMap(0, "PCMU", 8000)}
    assert audio.ptime is None
    assert sdp.media_direction(audio) is MediaDirection.SENDRECV


def test_parse_baresip_many_codecs() -> None:
    sdp = SessionDescription.parse(BARESIP)
    audio, video = sdp.media
    assert audio.payload_types == [96, 9, 0, 8, 101, 102]
    assert audio.rtpmap(96) == RtpMap(96, "opus", 48000, 2)
    assert audio.rtpmap(102) == RtpMap(102, "telephone-event", 8000)
    assert audio.fmtp(96) == "stereo=1;sprop-stereo=1"
    assert audio.fmtp(102) == "0-15"
    assert audio.fmtp(101) is None
    assert audio.bandwidths == ["AS:128"]
    assert audio.rtcp == (10095, None)
    assert not audio.rtcp_mux
    assert audio.has("rtcp-rsize") and audio.get("rtcp-rsize") is None
    assert audio.get("ssrc") == "3486474396 cname:5c2e0f2d-8e63-4b5a-b2d1-2b7f7ba3c1c4"
    assert audio.direction is MediaDirection.SENDRECV
    assert audio.ptime == 20
    assert video.media == "video" and video.rtpmap(97) == RtpMap(97, "H264", 90000)
    assert sdp.audio_index() == 0


def test_parse_asterisk() -> None:
    audio = SessionDescription.parse(ASTERISK).audio()
    assert audio is not None
    assert audio.ptime == 20 and audio.maxptime == 150
    assert audio.payload_types == [8, 0, 101]


def test_parse_every_line_type() -> None:
    sdp = SessionDescription.parse(EVERY_LINE)
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.phones == ["+1 617 555-6011"]
    assert sdp.connection is not None and sdp.connection.host == "224.2.17.12"
    assert sdp.times[0].start == 2873397496 and sdp.times[0].repeats == ["604800 3600 0 90000"]
    assert sdp.zone == "2882844526 -1h 2898848070 0"
    assert sdp.key == "prompt"
    assert sdp.direction is MediaDirection.RECVONLY
    assert sdp.extra_lines == [("y", "0123456789")]
    audio = sdp.media[0]
    assert (audio.port, audio.port_count, audio.title, audio.key) == (49170, 2, "voice", "clear:secret")
    assert audio.attributes[0] == Attribute("custom-flag")
    assert audio.get("x-vendor") == "some value with: colons"
    # Session-level direction applies when the stream has none.
    assert sdp.media_direction(audio) is MediaDirection.RECVONLY
    msrp = sdp.media[2]
    assert msrp.formats == ["*"] and not msrp.is_rtp and msrp.payload_types == []


def test_hold_variants() -> None:
    hold = SessionDescription.parse(ASTERISK_HOLD)
    assert hold.media[0].direction is MediaDirection.SENDONLY
    assert SessionDescription.parse(ASTERISK_INACTIVE).media[0].direction is MediaDirection.INACTIVE
    cisco = SessionDescription.parse(CISCO_HOLD)
    connection = cisco.media_connection(cisco.media[0])
    assert connection is not None and connection.is_hold


def test_media_connection_overrides_session_connection() -> None:
    sdp = SessionDescription.parse(SIPP_DEFAULT.replace("a=rtpmap", "c=IN IP4 10.9.8.7\r\na=rtpmap"))
    assert sdp.media_connection(sdp.media[0]) == Connection("10.9.8.7")


@pytest.mark.parametrize("text", FIXTURES)
def test_round_trip(text: str) -> None:
    assert SessionDescription.parse(text).serialize() == text
    assert SessionDescription.parse(text.replace("\r\n", "\n")).serialize() == text
    assert SessionDescription.parse(text.encode()).to_bytes() == text.encode()


def test_tolerates_blank_lines_and_missing_final_newline() -> None:
    sloppy = "\n" + SIPP_DEFAULT.replace("\r\n", "\n").rstrip("\n") + "\n\n\n"
    assert SessionDescription.parse(sloppy).serialize() == SIPP_DEFAULT


def test_missing_session_name_and_timing_are_tolerated() -> None:
    sdp = SessionDescription.parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\n")
    assert sdp.session_name == "-"
    assert sdp.times == []


def test_set_direction() -> None:
    sdp = SessionDescription.parse(ASTERISK)
    sdp.media[0].set_direction("sendonly")
    assert sdp.media[0].get_all("sendonly") == [None] and not sdp.media[0].has("sendrecv")
    with pytest.raises(SdpError):
        sdp.media[0].set_direction("sideways")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\r\n\r\n",
        "hello world",
        "INVITE sip:bob@example.com SIP/2.0\r\n",
        "o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n",
        "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
        "v=0\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n",
        "v=0\r\no=- abc 1 IN IP4 1.2.3.4\r\ns=-\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=now\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio port RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 5000 RTP/AVP PCMU\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 5000 RTP/AVP 200\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 5000 RTP/AVP 0\r\na=:value\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 5000 RTP/AVP 0\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=0\r\nv=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nr=1 2 3\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nA=foo\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n<html>\r\n",
    ],
)
def test_garbage_raises_typed_error(text: str) -> None:
    with pytest.raises(SdpParseError) as info:
        SessionDescription.parse(text)
    assert info.value.sip_status == 400


def test_parse_error_names_the_line() -> None:
    with pytest.raises(SdpParseError) as info:
        SessionDescription.parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio x RTP/AVP 0\r\n")
    assert info.value.line_number == 4
    assert "line 4" in str(info.value)


def test_non_utf8_bytes() -> None:
    with pytest.raises(SdpParseError):
        SessionDescription.parse(b"v=0\r\no=\xff\xfe 1 1 IN IP4 1.2.3.4\r\n")


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
