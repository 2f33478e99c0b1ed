from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from media.agent.errors import EncodeError
from media.agent.events import (
    AgentAudio,
    AgentCodec,
    Audio,
    Clear,
    Cleared,
    Dtmf,
    GatewayEvent,
    Hangup,
    Mark,
    MarkDone,
    ProtocolViolation,
    SendDtmf,
    Start,
    Stop,
    Summary,
)
from media.agent.twilio import SAMPLE_RATE, TwilioCodec, new_stream_sid
from media.g711 import ulaw_decode, ulaw_encode

ACCOUNT = "AC" + "1" * 32
CALL = "CA" + "2" * 32
SID = "MZ" + "ab" * 16


def make_start(**overrides: Any) -> Start:
    fields: dict[str, Any] = {
        "call_id": CALL,
        "from_": "+15551230000",
        "to": "+15557650000",
        "direction": "outbound",
        "metadata": {"campaign": "spring", "attempt": 2, "vip": True, "extra": {"k": [1]}},
        "account_id": ACCOUNT,
        "sample_rate": 8000,
    }
    fields.update(overrides)
    return Start(**fields)


def started_codec() -> TwilioCodec:
    codec = TwilioCodec(ACCOUNT, CALL, SID)
    codec.encode(make_start())
    return codec


def violation_kind(result: object) -> str:
    assert isinstance(result, ProtocolViolation), result
    return result.kind


# A tone made only of exact mu-law reconstruction levels survives encode/decode bit-exactly.
EXACT_PCM = ulaw_decode(bytes(range(0, 256, 2)) + bytes(range(255, 0, -8)) + b"\x55" * 8)[:320]


def mirror_decode(frame: str) -> tuple[dict[str, Any], GatewayEvent | None]:
    """What a Twilio Media Streams server (the agent side) makes of our frames."""
    msg = json.loads(frame)
    ev = msg["event"]
    if ev == "start":
        s = msg["start"]
        params = dict(s["customParameters"])
        frm, to = params.pop("from_number"), params.pop("to_number")
        return msg, Start(s["callSid"], frm, to, "outbound", params, s["accountSid"], 8000)
    if ev == "media":
        return msg, Audio(ulaw_decode(base64.b64decode(msg["media"]["payload"])))
    if ev == "dtmf":
        return msg, Dtmf(msg["dtmf"]["digit"], 0)
    if ev == "mark":
        return msg, MarkDone(msg["mark"]["name"], "played")
    if ev == "stop":
        return msg, Stop("remote_hangup")
    return msg, None


# --- gateway -> agent ---------------------------------------------------------


def test_codec_satisfies_protocol() -> None:
    c: AgentCodec = TwilioCodec(ACCOUNT, CALL, SID)
    assert c.sample_rate == SAMPLE_RATE == 8000
    assert c.subprotocol is None


def test_connected_exact_shape() -> None:
    assert TwilioCodec(ACCOUNT, CALL, SID).opening_frames() == [
        '{"event":"connected","protocol":"Call","version":"1.0.0"}'
    ]


def test_start_exact_shape() -> None:
    frame = TwilioCodec(ACCOUNT, CALL, SID).encode(make_start())
    assert json.loads(frame or "") == {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": SID,
        "start": {
            "streamSid": SID,
            "accountSid": ACCOUNT,
            "callSid": CALL,
            "tracks": ["inbound"],
            "customParameters": {
                "campaign": "spring",
                "attempt": "2",
                "vip": "true",
                "extra": '{"k":[1]}',
                "from_number": "+15551230000",
                "to_number": "+15557650000",
            },
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    assert frame is not None and frame.startswith('{"event":"start","sequenceNumber":"1","streamSid":')


def test_call_numbers_override_metadata_keys() -> None:
    codec = TwilioCodec(ACCOUNT, CALL, SID)
    frame = codec.encode(make_start(metadata={"from_number": "spoof"}))
    assert json.loads(frame or "")["start"]["customParameters"]["from_number"] == "+15551230000"


def test_message_sequence_exact_shapes() -> None:
    codec = started_codec()
    pcm = b"\x00\x00" * 160
    media1 = json.loads(codec.encode(Audio(pcm)) or "")
    media2 = json.loads(codec.encode(Audio(pcm)) or "")
    dtmf = json.loads(codec.encode(Dtmf("1", 100)) or "")
    mark = json.loads(codec.encode(MarkDone("m1", "played")) or "")
    assert codec.encode(Cleared(100, 200)) is None
    mark2 = json.loads(codec.encode(MarkDone("m2", "cleared")) or "")
    media3 = json.loads(codec.encode(Audio(pcm)) or "")
    stop = json.loads(codec.encode(Stop("remote_hangup")) or "")

    silence = base64.b64encode(b"\xff" * 160).decode()
    assert media1 == {
        "event": "media",
        "sequenceNumber": "2",
        "streamSid": SID,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": silence},
    }
    assert media2["sequenceNumber"] == "3"
    assert media2["media"]["chunk"] == "2" and media2["media"]["timestamp"] == "20"
    assert dtmf == {
        "event": "dtmf",
        "streamSid": SID,
        "sequenceNumber": "4",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
    assert mark == {"event": "mark", "sequenceNumber": "5", "streamSid": SID, "mark": {"name": "m1"}}
    # Cleared has no Twilio form and does not consume a sequence number.
    assert mark2["sequenceNumber"] == "6" and mark2["mark"] == {"name": "m2"}
    assert media3["sequenceNumber"] == "7"
    assert media3["media"]["chunk"] == "3" and media3["media"]["timestamp"] == "40"
    assert stop == {
        "event": "stop",
        "sequenceNumber": "8",
        "streamSid": SID,
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    }


def test_timestamp_follows_audio_duration() -> None:
    codec = started_codec()
    stamps = []
    for samples in (160, 80, 240, 160):
        msg = json.loads(codec.encode(Audio(b"\x00\x00" * samples)) or "")
        stamps.append(msg["media"]["timestamp"])
    assert stamps == ["0", "20", "30", "60"]


def test_gateway_round_trip() -> None:
    codec = TwilioCodec(ACCOUNT, CALL, SID)
    start = make_start(metadata={"a": "1", "b": "two"})
    events: list[GatewayEvent] = [
        start,
        Audio(EXACT_PCM),
        Dtmf("#", 250),
        MarkDone("bye", "played"),
        Stop("remote_hangup"),
    ]
    seqs = []
    for event in events:
        frame = codec.encode(event)
        assert isinstance(frame, str)
        msg, decoded = mirror_decode(frame)
        seqs.append(int(msg["sequenceNumber"]))
        assert msg["streamSid"] == SID
        if isinstance(event, Dtmf):
            assert decoded == Dtmf(event.digit, 0)  # Twilio carries no duration
        else:
            assert decoded == event
    assert seqs == [1, 2, 3, 4, 5]


def test_stream_sid_generation() -> None:
    sid = TwilioCodec(ACCOUNT, CALL).stream_sid
    assert re.fullmatch(r"MZ[0-9a-f]{32}", sid)
    assert TwilioCodec(ACCOUNT, CALL).stream_sid != sid
    assert TwilioCodec(ACCOUNT, CALL, token_hex=lambda n: "0f" * n).stream_sid == "MZ" + "0f" * 16
    assert new_stream_sid(lambda n: "a" * (2 * n)) == "MZ" + "a" * 32


@pytest.mark.parametrize("sid", ["", "MZ123", "CA" + "0" * 32, "MZ" + "g" * 32, "MZ" + "0" * 33])
def test_bad_stream_sid_rejected(sid: str) -> None:
    with pytest.raises(ValueError):
        TwilioCodec(ACCOUNT, CALL, sid)


def test_encode_state_errors() -> None:
    codec = TwilioCodec(ACCOUNT, CALL, SID)
    with pytest.raises(EncodeError):
        codec.encode(Audio(b"\x00\x00"))
    codec.encode(make_start())
    with pytest.raises(EncodeError):
        codec.encode(make_start())
    codec.encode(Stop("api_hangup"))
    with pytest.raises(EncodeError):
        codec.encode(Audio(b"\x00\x00"))


@pytest.mark.parametrize(
    "start",
    [
        make_start(sample_rate=16000),
        make_start(call_id="CA" + "9" * 32),
        make_start(account_id="AC" + "9" * 32),
        make_start(direction="up"),
        make_start(metadata={"x": object()}),
    ],
)
def test_bad_start_rejected(start: Start) -> None:
    with pytest.raises(EncodeError):
        TwilioCodec(ACCOUNT, CALL, SID).encode(start)


@pytest.mark.parametrize(
    "event",
    [Audio(b"\x00"), Dtmf("X", 10), MarkDone("m", "gone"), Clear()],  # type: ignore[arg-type]
)
def test_bad_events_rejected(event: GatewayEvent) -> None:
    with pytest.raises(EncodeError):
        started_codec().encode(event)


# --- agent -> gateway ---------------------------------------------------------


def pipecat_style(obj: dict[str, Any]) -> str:
    # Pipecat's serializer uses json.dumps defaults (spaces after separators).
    return json.dumps(obj)


def test_pipecat_media_decodes_to_pcm() -> None:
    ulaw = ulaw_encode(EXACT_PCM)
    frame = pipecat_style(
        {"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(ulaw).decode("utf-8")}}
    )
    assert started_codec().decode(frame) == AgentAudio(EXACT_PCM)


def test_pipecat_clear_and_mark_decode() -> None:
    codec = started_codec()
    assert codec.decode(pipecat_style({"event": "clear", "streamSid": SID})) == Clear()
    assert codec.decode(
        pipecat_style({"event": "mark", "streamSid": SID, "mark": {"name": "utterance-3"}})
    ) == Mark("utterance-3")


def test_extra_fields_and_foreign_stream_sid_tolerated() -> None:
    codec = started_codec()
    frame = json.dumps(
        {
            "event": "media",
            "streamSid": "MZ" + "f" * 32,
            "sequenceNumber": "9",
            "media": {"payload": "/w==", "track": "outbound", "chunk": "4", "timestamp": "80"},
            "extra": None,
        }
    )
    assert codec.decode(frame) == AgentAudio(b"\x00\x00")


def test_decode_works_before_start_and_empty_payload() -> None:
    codec = TwilioCodec(ACCOUNT, CALL, SID)
    assert codec.decode('{"event":"media","media":{"payload":""}}') == AgentAudio(b"")


def test_our_frames_satisfy_pipecat_expectations() -> None:
    # The conditions Pipecat's runner and serializer check on what Twilio sends.
    codec = TwilioCodec(ACCOUNT, CALL, SID)
    first = json.loads(codec.opening_frames()[0])
    start = json.loads(codec.encode(make_start()) or "")
    assert first["event"] == "connected"
    assert start["event"] == "start" and "streamSid" in start["start"] and "callSid" in start["start"]
    body = start["start"]["customParameters"]
    assert body["from_number"] == "+15551230000" and body["to_number"] == "+15557650000"
    media = json.loads(codec.encode(Audio(EXACT_PCM)) or "")
    assert ulaw_decode(base64.b64decode(media["media"]["payload"])) == EXACT_PCM
    dtmf = json.loads(codec.encode(Dtmf("*", 90)) or "")
    assert dtmf["dtmf"].get("digit") == "*"


def test_limits_are_configurable() -> None:
    codec = TwilioCodec(ACCOUNT, CALL, SID, max_audio_ms=20, max_text_bytes=400, max_mark_name=4)
    ok = base64.b64encode(b"\xff" * 160).decode()
    big = base64.b64encode(b"\xff" * 161).decode()
    assert codec.decode(json.dumps({"event": "media", "media": {"payload": ok}})) == AgentAudio(
        b"\x00\x00" * 160
    )
    assert violation_kind(codec.decode(json.dumps({"event": "media", "media": {"payload": big}}))) == (
        "oversized_frame"
    )
    assert violation_kind(codec.decode('{"event":"mark","mark":{"name":"12345"}}')) == "bad_value"
    assert violation_kind(codec.decode('{"event":"clear","x":"' + "y" * 400 + '"}')) == "text_too_large"
    with pytest.raises(ValueError):
        TwilioCodec(ACCOUNT, CALL, SID, max_audio_ms=0)


def test_default_limit_allows_ten_seconds() -> None:
    codec = started_codec()
    ten_s = base64.b64encode(b"\xff" * 80000).decode()
    result = codec.decode(json.dumps({"event": "media", "media": {"payload": ten_s}}))
    assert isinstance(result, AgentAudio) and len(result.pcm) == 160000
    over = base64.b64encode(b"\xff" * 80003).decode()
    assert violation_kind(codec.decode(json.dumps({"event": "media", "media": {"payload": over}}))) == (
        "oversized_frame"
    )


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b'{"event":"clear"}', "binary_not_allowed"),
        (b"\x00\x00", "binary_not_allowed"),
        ("{", "malformed_json"),
        ("[]", "malformed_json"),
        ('{"event":"media","media":{"payload":"/w=="}} x', "malformed_json"),
        ("{}", "missing_field"),
        ('{"streamSid":"MZ"}', "missing_field"),
        ('{"event":"media"}', "missing_field"),
        ('{"event":"media","media":{}}', "missing_field"),
        ('{"event":"mark"}', "missing_field"),
        ('{"event":"mark","mark":{}}', "missing_field"),
        ('{"event":1}', "bad_value"),
        ('{"event":"media","media":null}', "bad_value"),
        ('{"event":"media","media":"abc"}', "bad_value"),
        ('{"event":"media","media":{"payload":5}}', "bad_value"),
        ('{"event":"media","media":{"payload":"not base64!"}}', "bad_value"),
        ('{"event":"media","media":{"payload":"/w="}}', "bad_value"),
        ('{"event":"media","media":{"payload":"\\u00e9\\u00e9\\u00e9\\u00e9"}}', "bad_value"),
        ('{"event":"mark","mark":"m"}', "bad_value"),
        ('{"event":"mark","mark":{"name":""}}', "bad_value"),
        ('{"event":"mark","mark":{"name":3}}', "bad_value"),
        ('{"event":"start","start":{}}', "unknown_type"),
        ('{"event":"hangup"}', "unknown_type"),
        ('{"event":"send_dtmf","digits":"1"}', "unknown_type"),
        ('{"type":"clear"}', "missing_field"),
        ("[" * 200_000, "text_too_large"),
    ],
)
def test_violations(frame: str | bytes, kind: str) -> None:
    assert violation_kind(started_codec().decode(frame)) == kind


def test_orbit_only_events_have_no_twilio_decode() -> None:
    # Hangup/SendDtmf/Summary cannot be expressed by a Twilio agent.
    codec = started_codec()
    for msg in ({"event": "hangup"}, {"event": "summary", "data": {}}):
        result = codec.decode(json.dumps(msg))
        assert not isinstance(result, (Hangup, SendDtmf, Summary))
