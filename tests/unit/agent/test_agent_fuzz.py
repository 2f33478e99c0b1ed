from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from media.agent.events import (
    VIOLATION_KINDS,
    AgentAudio,
    Clear,
    Hangup,
    Mark,
    ProtocolViolation,
    SendDtmf,
    Summary,
)
from media.agent.orbit_voice import OrbitVoiceCodec
from media.agent.twilio import TwilioCodec

ORBIT = OrbitVoiceCodec(16000)
TWILIO = TwilioCodec("AC" + "0" * 32, "CA" + "0" * 32, "MZ" + "0" * 32)
RESULT_TYPES = (AgentAudio, Mark, Clear, Hangup, SendDtmf, Summary, ProtocolViolation)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["type", "event", "name", "digits", "data", "after_playout", "media", "mark", "payload"]
)
type_values = st.sampled_from(
    ["mark", "clear", "hangup", "send_dtmf", "summary", "media", "start", "stop", "", "MARK"]
)
messages = st.dictionaries(keys, json_values | type_values, max_size=5)
b64 = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())


def check(result: object) -> None:
    assert isinstance(result, RESULT_TYPES)
    if isinstance(result, ProtocolViolation):
        assert result.kind in VIOLATION_KINDS


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    check(ORBIT.decode(text))
    check(TWILIO.decode(text))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=70_000))
def test_random_bytes_never_raise(data: bytes) -> None:
    check(ORBIT.decode(data))
    check(TWILIO.decode(data))


@settings(max_examples=300, deadline=None)
@given(messages, st.dictionaries(st.sampled_from(["name", "payload"]), json_values | b64, max_size=2))
def test_structured_json_never_raises(msg: dict[str, Any], inner: dict[str, Any]) -> None:
    for key in ("media", "mark"):
        if key in msg and isinstance(msg[key], dict):
            msg[key] = inner
    frame = json.dumps(msg)
    check(ORBIT.decode(frame))
    check(TWILIO.decode(frame))
