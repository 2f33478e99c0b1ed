"""The SDP model and parser (gateway.sip.sdp)."""

from __future__ import annotations

import pytest

from gateway.sip.sdp import (
    Attribute,
    Connection,
    MediaDirection,
    RtpMap,
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
    EVERY_LINE,
    FIXTURES,
    SIPP_DEFAULT,
)

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
