"""orbit-voice v1: the gateway's native agent protocol (see docs/agent-protocol.md).

Audio travels as binary frames of raw PCM16 LE mono at the negotiated rate;
everything else is one JSON object per text frame, discriminated by ``type``.
"""

from __future__ import annotations

from typing import Any, Final

from media.agent.errors import (
    DEFAULT_MAX_DTMF_DIGITS,
    DEFAULT_MAX_MARK_NAME,
    DEFAULT_MAX_SUMMARY_BYTES,
    DEFAULT_MAX_TEXT_BYTES,
    EncodeError,
    check_dtmf_digits,
    dumps,
    json_size,
    parse_json_object,
    require_str,
    violation,
)
from media.agent.events import (
    DIRECTIONS,
    DTMF_DIGITS,
    MARK_STATUSES,
    STOP_REASONS,
    AgentAudio,
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

SUBPROTOCOL: Final = "orbit-voice.v1"
ENCODING: Final = "pcm_s16le"
FRAME_MS: Final = 20
MIN_SAMPLE_RATE: Final = 8000
MAX_SAMPLE_RATE: Final = 48000


class OrbitVoiceCodec:
    """Stateless encoder/decoder for one orbit-voice v1 connection."""

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        max_audio_ms: int = 1000,
        max_mark_name: int = DEFAULT_MAX_MARK_NAME,
        max_dtmf_digits: int = DEFAULT_MAX_DTMF_DIGITS,
        max_summary_bytes: int = DEFAULT_MAX_SUMMARY_BYTES,
    ) -> None:
        # A 20 ms frame must be a whole number of samples.
        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE or sample_rate % 50:
            raise ValueError(f"unsupported sample rate {sample_rate}")
        if min(max_text_bytes, max_audio_ms, max_mark_name, max_dtmf_digits, max_summary_bytes) <= 0:
            raise ValueError("limits must be positive")
        self._sample_rate = sample_rate
        self.max_text_bytes = max_text_bytes
        self.max_audio_ms = max_audio_ms
        self.max_binary_bytes = sample_rate * 2 * max_audio_ms // 1000
        self.max_mark_name = max_mark_name
        self.max_dtmf_digits = max_dtmf_digits
        self.max_summary_bytes = max_summary_bytes

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def subprotocol(self) -> str:
        return SUBPROTOCOL

    def opening_frames(self) -> list[str | bytes]:
        return []

    # --- gateway -> agent -----------------------------------------------------

    def encode(self, event: GatewayEvent) -> str | bytes:
        if isinstance(event, Audio):
            if len(event.pcm) % 2:
                raise EncodeError("PCM16 audio must have an even number of bytes")
            return event.pcm
        if isinstance(event, Start):
            return self._encode_start(event)
        if isinstance(event, Dtmf):
            if event.digit not in DTMF_DIGITS:
                raise EncodeError(f"not a DTMF digit: {event.digit!r}")
            if event.duration_ms < 0:
                raise EncodeError("duration_ms must be >= 0")
            return dumps({"type": "dtmf", "digit": event.digit, "duration_ms": event.duration_ms})
        if isinstance(event, MarkDone):
            if event.status not in MARK_STATUSES:
                raise EncodeError(f"bad mark status {event.status!r}")
            return dumps({"type": "mark", "name": event.name, "status": event.status})
        if isinstance(event, Cleared):
            if event.played_ms < 0 or event.dropped_ms < 0:
                raise EncodeError("played_ms and dropped_ms must be >= 0")
            return dumps({"type": "cleared", "played_ms": event.played_ms, "dropped_ms": event.dropped_ms})
        if isinstance(event, Stop):
            if event.reason not in STOP_REASONS:
                raise EncodeError(f"bad stop reason {event.reason!r}")
            return dumps({"type": "stop", "reason": event.reason})
        raise EncodeError(f"not a gateway event: {type(event).__name__}")

    def _encode_start(self, start: Start) -> str:
        if start.sample_rate != self._sample_rate:
            raise EncodeError(f"start.sample_rate {start.sample_rate} != codec rate {self._sample_rate}")
        if start.direction not in DIRECTIONS:
            raise EncodeError(f"bad direction {start.direction!r}")
        return dumps(
            {
                "type": "start",
                "call": {
                    "id": start.call_id,
                    "from": start.from_,
                    "to": start.to,
                    "direction": start.direction,
                    "metadata": start.metadata,
                },
                "media": {
                    "encoding": ENCODING,
                    "sample_rate": self._sample_rate,
                    "channels": 1,
                    "frame_ms": FRAME_MS,
                },
                "reconnect": start.reconnect,
            }
        )

    # --- agent -> gateway -----------------------------------------------------

    def decode(self, frame: str | bytes) -> AgentEvent | ProtocolViolation:
        if isinstance(frame, (bytes, bytearray, memoryview)):
            return self._decode_audio(bytes(frame))
        if not isinstance(frame, str):
            return violation("bad_value", f"frame is {type(frame).__name__}, not str or bytes")
        msg = parse_json_object(frame, self.max_text_bytes)
        if isinstance(msg, ProtocolViolation):
            return msg
        if "type" not in msg:
            return violation("missing_field", "missing 'type'")
        kind = msg["type"]
        if not isinstance(kind, str):
            return violation("bad_value", "'type' must be a string")
        handler = self._HANDLERS.get(kind)
        if handler is None:
            return violation("unknown_type", f"unknown type {kind[:40]!r}")
        return handler(self, msg)

    def _decode_audio(self, data: bytes) -> AgentAudio | ProtocolViolation:
        if len(data) > self.max_binary_bytes:
            return violation(
                "oversized_frame", f"binary frame of {len(data)} bytes over {self.max_binary_bytes}"
            )
        # The whole frame is dropped: a half sample means the agent's framing is
        # wrong, and playing a guess at the rest is worse than a short gap.
        if len(data) % 2:
            return violation("odd_sized_frame", f"binary frame of {len(data)} bytes is not whole samples")
        return AgentAudio(data)

    def _decode_mark(self, msg: dict[str, Any]) -> Mark | ProtocolViolation:
        name = require_str(msg, "name", "mark", max_len=self.max_mark_name)
        return name if isinstance(name, ProtocolViolation) else Mark(name)

    def _decode_clear(self, msg: dict[str, Any]) -> Clear:
        return Clear()

    def _decode_hangup(self, msg: dict[str, Any]) -> Hangup | ProtocolViolation:
        after = msg.get("after_playout", True)
        if not isinstance(after, bool):
            return violation("bad_value", "hangup: 'after_playout' must be a boolean")
        return Hangup(after_playout=after)

    def _decode_send_dtmf(self, msg: dict[str, Any]) -> SendDtmf | ProtocolViolation:
        digits = require_str(msg, "digits", "send_dtmf", max_len=self.max_dtmf_digits)
        if isinstance(digits, ProtocolViolation):
            return digits
        checked = check_dtmf_digits(digits, "send_dtmf")
        return checked if isinstance(checked, ProtocolViolation) else SendDtmf(checked)

    def _decode_summary(self, msg: dict[str, Any]) -> Summary | ProtocolViolation:
        if "data" not in msg:
            return violation("missing_field", "summary: missing 'data'")
        data = msg["data"]
        if not isinstance(data, dict):
            return violation("bad_value", "summary: 'data' must be a JSON object")
        size = json_size(data)
        if size is None or size > self.max_summary_bytes:
            return violation("bad_value", f"summary: 'data' larger than {self.max_summary_bytes} bytes")
        return Summary(data)

    _HANDLERS: Final = {
        "mark": _decode_mark,
        "clear": _decode_clear,
        "hangup": _decode_hangup,
        "send_dtmf": _decode_send_dtmf,
        "summary": _decode_summary,
    }
