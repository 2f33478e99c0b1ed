from __future__ import annotations

import json
from typing import Any

import pytest

from media.agent.errors import EncodeError
from media.agent.events import (
    AgentAudio,
    AgentCodec,
    AgentEvent,
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
from media.agent.orbit_voice import SUBPROTOCOL, OrbitVoiceCodec

START = Start(
    call_id="call_01",
    from_="+15551230000",
    to="+15557650000",
    direction="outbound",
    metadata={"lead": 42, "name": "Ana", "tags": ["a", "b"]},
    account_id="acct_1",
    sample_rate=16000,
)


def mirror_decode(frame: str | bytes) -> GatewayEvent:
    """What a minimal orbit-voice agent does with gateway frames."""
    if isinstance(frame, bytes):
        return Audio(frame)
    msg = json.loads(frame)
    t = msg["type"]
    if t == "start":
        call = msg["call"]
        return Start(
            call_id=call["id"],
            from_=call["from"],
            to=call["to"],
            direction=call["direction"],
            metadata=call["metadata"],
            account_id=START.account_id,  # not on the wire
            sample_rate=msg["media"]["sample_rate"],
            reconnect=msg["reconnect"],
        )
    if t == "dtmf":
        return Dtmf(msg["digit"], msg["duration_ms"])
    if t == "mark":
        return MarkDone(msg["name"], msg["status"])
    if t == "cleared":
        return Cleared(msg["played_ms"], msg["dropped_ms"])
    if t == "stop":
        return Stop(msg["reason"])
    raise AssertionError(f"unexpected frame {frame!r}")


def mirror_encode(event: AgentEvent) -> str | bytes:
    """What a minimal orbit-voice agent sends."""
    if isinstance(event, AgentAudio):
        return event.pcm
    if isinstance(event, Mark):
        return json.dumps({"type": "mark", "name": event.name})
    if isinstance(event, Clear):
        return json.dumps({"type": "clear"})
    if isinstance(event, Hangup):
        return json.dumps({"type": "hangup", "after_playout": event.after_playout})
    if isinstance(event, SendDtmf):
        return json.dumps({"type": "send_dtmf", "digits": event.digits})
    return json.dumps({"type": "summary", "data": event.data})


@pytest.fixture
def codec() -> OrbitVoiceCodec:
    return OrbitVoiceCodec(16000)


def violation_kind(result: object) -> str:
    assert isinstance(result, ProtocolViolation), result
    return result.kind


# --- gateway -> agent ---------------------------------------------------------


def test_codec_satisfies_protocol(codec: OrbitVoiceCodec) -> None:
    c: AgentCodec = codec
    assert c.subprotocol == SUBPROTOCOL == "orbit-voice.v1"
    assert c.sample_rate == 16000
    assert c.opening_frames() == []


def test_start_exact_shape(codec: OrbitVoiceCodec) -> None:
    frame = codec.encode(START)
    assert frame == (
        '{"type":"start","call":{"id":"call_01","from":"+15551230000","to":"+15557650000",'
        '"direction":"outbound","metadata":{"lead":42,"name":"Ana","tags":["a","b"]}},'
        '"media":{"encoding":"pcm_s16le","sample_rate":16000,"channels":1,"frame_ms":20},'
        '"reconnect":false}'
    )


def test_start_reconnect_flag(codec: OrbitVoiceCodec) -> None:
    start = Start("c", "a", "b", "inbound", {}, "acct", 16000, reconnect=True)
    msg = json.loads(codec.encode(start))
    assert msg["reconnect"] is True
    assert msg["call"]["direction"] == "inbound"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (Dtmf("5", 120), '{"type":"dtmf","digit":"5","duration_ms":120}'),
        (Dtmf("#", 0), '{"type":"dtmf","digit":"#","duration_ms":0}'),
        (MarkDone("m1", "played"), '{"type":"mark","name":"m1","status":"played"}'),
        (MarkDone("m2", "cleared"), '{"type":"mark","name":"m2","status":"cleared"}'),
        (Cleared(340, 1660), '{"type":"cleared","played_ms":340,"dropped_ms":1660}'),
        (Stop("api_hangup"), '{"type":"stop","reason":"api_hangup"}'),
        (Stop("remote_hangup"), '{"type":"stop","reason":"remote_hangup"}'),
        (Stop("max_duration"), '{"type":"stop","reason":"max_duration"}'),
        (Stop("error"), '{"type":"stop","reason":"error"}'),
    ],
)
def test_control_exact_shapes(codec: OrbitVoiceCodec, event: GatewayEvent, expected: str) -> None:
    assert codec.encode(event) == expected


def test_audio_is_binary_passthrough(codec: OrbitVoiceCodec) -> None:
    pcm = bytes(range(256)) * 2 + b"\x01\x02" * 32  # 640 bytes = 20 ms at 16 kHz
    assert codec.encode(Audio(pcm)) == pcm


@pytest.mark.parametrize(
    "event",
    [
        START,
        Audio(b"\x00\x01" * 320),
        Dtmf("D", 80),
        MarkDone("greeting-end", "played"),
        MarkDone("x", "cleared"),
        Cleared(0, 0),
        Stop("remote_hangup"),
    ],
)
def test_gateway_round_trip(codec: OrbitVoiceCodec, event: GatewayEvent) -> None:
    assert mirror_decode(codec.encode(event)) == event


@pytest.mark.parametrize(
    "event",
    [
        Audio(b"\x00"),
        Dtmf("E", 100),
        Dtmf("12", 100),
        Dtmf("1", -1),
        Cleared(-1, 0),
        Start("c", "a", "b", "outbound", {}, "acct", 8000),
        Start("c", "a", "b", "sideways", {}, "acct", 16000),  # type: ignore[arg-type]
        Start("c", "a", "b", "outbound", {"x": object()}, "acct", 16000),
        Start("c", "a", "b", "outbound", {"x": float("nan")}, "acct", 16000),
        MarkDone("m", "lost"),  # type: ignore[arg-type]
        Stop("bored"),  # type: ignore[arg-type]
        Clear(),
    ],
)
def test_encode_rejects_gateway_bugs(codec: OrbitVoiceCodec, event: GatewayEvent) -> None:
    with pytest.raises(EncodeError):
        codec.encode(event)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_supported_rates(rate: int) -> None:
    codec = OrbitVoiceCodec(rate)
    assert codec.max_binary_bytes == rate * 2
    assert (
        json.loads(codec.encode(Start("c", "a", "b", "outbound", {}, "x", rate)))["media"]["sample_rate"]
        == rate
    )


@pytest.mark.parametrize("rate", [0, 7999, 16001, 96000])
def test_unsupported_rates(rate: int) -> None:
    with pytest.raises(ValueError):
        OrbitVoiceCodec(rate)


# --- agent -> gateway ---------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        AgentAudio(b"\x10\x00" * 800),
        AgentAudio(b"\x01\x02"),
        AgentAudio(b""),
        Mark("m1"),
        Mark("ünïcode ✓"),
        Clear(),
        Hangup(after_playout=True),
        Hangup(after_playout=False),
        SendDtmf("0123456789*#ABCD"),
        Summary({"outcome": "booked", "nested": {"n": [1, 2.5, None, True]}}),
        Summary({}),
    ],
)
def test_agent_round_trip(codec: OrbitVoiceCodec, event: AgentEvent) -> None:
    assert codec.decode(mirror_encode(event)) == event


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"mark","name":"m1"}', Mark("m1")),
        ('{"type":"clear"}', Clear()),
        ('{"type":"hangup","after_playout":true}', Hangup(True)),
        ('{"type":"hangup","after_playout":false}', Hangup(False)),
        ('{"type":"hangup"}', Hangup(True)),
        ('{"type":"send_dtmf","digits":"123#"}', SendDtmf("123#")),
        ('{"type":"send_dtmf","digits":"*abcd"}', SendDtmf("*ABCD")),
        ('{"type":"summary","data":{"k":"v"}}', Summary({"k": "v"})),
        # Unknown fields are ignored for forward compatibility.
        ('{"type":"clear","id":7,"extra":{"a":1}}', Clear()),
        ('  {"type" : "mark", "name" : "spaced"}\n', Mark("spaced")),
    ],
)
def test_decode_literal_agent_messages(codec: OrbitVoiceCodec, frame: str, expected: AgentEvent) -> None:
    assert codec.decode(frame) == expected


def test_decode_accepts_bytearray_and_memoryview(codec: OrbitVoiceCodec) -> None:
    assert codec.decode(bytearray(b"\x01\x00")) == AgentAudio(b"\x01\x00")  # type: ignore[arg-type]
    assert codec.decode(memoryview(b"\x01\x00")) == AgentAudio(b"\x01\x00")  # type: ignore[arg-type]


def test_max_binary_frame_is_one_second(codec: OrbitVoiceCodec) -> None:
    assert codec.decode(b"\x00" * 32000) == AgentAudio(b"\x00" * 32000)
    assert violation_kind(codec.decode(b"\x00" * 32002)) == "oversized_frame"


# --- violations -----------------------------------------------------------------

_BIG: dict[str, Any] = {"blob": "x" * 40000}


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("{", "malformed_json"),
        ("", "malformed_json"),
        ("not json", "malformed_json"),
        ('{"type":"clear"} trailing', "malformed_json"),
        ("[1,2]", "malformed_json"),
        ('"clear"', "malformed_json"),
        ("null", "malformed_json"),
        ('{"type":"summary","data":{"x":NaN}}', "malformed_json"),
        ('{"type":"summary","data":{"x":Infinity}}', "malformed_json"),
        ("[" * 200_000, "text_too_large"),
        ("[" * 50_000 + "]" * 50_000, "text_too_large"),
        ('{"type":"audio"}', "unknown_type"),
        ('{"type":"start"}', "unknown_type"),
        ('{"type":"MARK","name":"x"}', "unknown_type"),
        ('{"name":"m"}', "missing_field"),
        ('{"type":"mark"}', "missing_field"),
        ('{"type":"send_dtmf"}', "missing_field"),
        ('{"type":"summary"}', "missing_field"),
        ('{"type":5}', "bad_value"),
        ('{"type":null}', "bad_value"),
        ('{"type":"mark","name":""}', "bad_value"),
        ('{"type":"mark","name":7}', "bad_value"),
        ('{"type":"mark","name":"' + "n" * 257 + '"}', "bad_value"),
        ('{"type":"hangup","after_playout":"yes"}', "bad_value"),
        ('{"type":"hangup","after_playout":1}', "bad_value"),
        ('{"type":"hangup","after_playout":null}', "bad_value"),
        ('{"type":"send_dtmf","digits":""}', "bad_value"),
        ('{"type":"send_dtmf","digits":"12E"}', "bad_value"),
        ('{"type":"send_dtmf","digits":"1 2"}', "bad_value"),
        ('{"type":"send_dtmf","digits":"\\u0130"}', "bad_value"),
        ('{"type":"send_dtmf","digits":123}', "bad_value"),
        ('{"type":"send_dtmf","digits":"' + "1" * 33 + '"}', "bad_value"),
        ('{"type":"summary","data":[1]}', "bad_value"),
        ('{"type":"summary","data":"text"}', "bad_value"),
        ('{"type":"summary","data":' + json.dumps(_BIG) + "}", "bad_value"),
    ],
)
def test_text_violations(codec: OrbitVoiceCodec, frame: str, kind: str) -> None:
    assert violation_kind(codec.decode(frame)) == kind


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    codec = OrbitVoiceCodec(16000, max_text_bytes=1_000_000)
    assert violation_kind(codec.decode("[" * 300_000)) == "malformed_json"
    deep = '{"type":"summary","data":' + '{"a":' * 50_000 + "1" + "}" * 50_001
    assert violation_kind(codec.decode(deep)) == "malformed_json"


def test_text_limit_counts_utf8_bytes() -> None:
    codec = OrbitVoiceCodec(16000, max_text_bytes=100)
    ok = '{"type":"mark","name":"' + "a" * 70 + '"}'
    assert codec.decode(ok) == Mark("a" * 70)
    # 34 characters but far more than 100 bytes once encoded.
    wide = '{"type":"mark","name":"' + "€" * 34 + '"}'
    assert len(wide) < 100
    assert violation_kind(codec.decode(wide)) == "text_too_large"


def test_lone_surrogate_does_not_crash(codec: OrbitVoiceCodec) -> None:
    assert codec.decode('{"type":"mark","name":"\ud800"}') == Mark("\ud800")
    assert violation_kind(codec.decode("\udfff")) == "malformed_json"


@pytest.mark.parametrize("size", [1, 3, 641])
def test_odd_sized_binary_is_dropped(codec: OrbitVoiceCodec, size: int) -> None:
    result = codec.decode(b"\x00" * size)
    assert violation_kind(result) == "odd_sized_frame"


def test_limits_are_configurable() -> None:
    codec = OrbitVoiceCodec(
        8000, max_audio_ms=20, max_mark_name=3, max_dtmf_digits=2, max_summary_bytes=10, max_text_bytes=64
    )
    assert codec.decode(b"\x00" * 320) == AgentAudio(b"\x00" * 320)
    assert violation_kind(codec.decode(b"\x00" * 322)) == "oversized_frame"
    assert codec.decode('{"type":"mark","name":"abc"}') == Mark("abc")
    assert violation_kind(codec.decode('{"type":"mark","name":"abcd"}')) == "bad_value"
    assert codec.decode('{"type":"send_dtmf","digits":"12"}') == SendDtmf("12")
    assert violation_kind(codec.decode('{"type":"send_dtmf","digits":"123"}')) == "bad_value"
    assert codec.decode('{"type":"summary","data":{"a":1}}') == Summary({"a": 1})
    assert violation_kind(codec.decode('{"type":"summary","data":{"a":"12345"}}')) == "bad_value"
    assert violation_kind(codec.decode('{"type":"clear","pad":"' + "x" * 60 + '"}')) == "text_too_large"
    with pytest.raises(ValueError):
        OrbitVoiceCodec(16000, max_text_bytes=0)


def test_violation_detail_is_bounded(codec: OrbitVoiceCodec) -> None:
    result = codec.decode('{"type":"' + "z" * 5000 + '"}')
    assert isinstance(result, ProtocolViolation)
    assert result.kind == "unknown_type"
    assert len(result.detail) <= 120


def test_non_frame_input_is_a_violation(codec: OrbitVoiceCodec) -> None:
    assert violation_kind(codec.decode(123)) == "bad_value"  # type: ignore[arg-type]
