"""Twilio Media Streams (bidirectional) compatibility codec.

The gateway plays Twilio's part, so an agent written for ``<Connect><Stream>``
(e.g. a Pipecat bot using TwilioFrameSerializer) works unchanged.  The codec
takes and returns PCM16 LE at 8 kHz and does the mu-law conversion itself.
Everything is a JSON text frame; binary frames from the agent are violations.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from typing import Any, Final

from media.agent.errors import (
    DEFAULT_MAX_MARK_NAME,
    EncodeError,
    dumps,
    parse_json_object,
    require_str,
    violation,
)
from media.agent.events import (
    DIRECTIONS,
    DTMF_DIGITS,
    MARK_STATUSES,
    AgentAudio,
    AgentEvent,
    Audio,
    Clear,
    Cleared,
    Dtmf,
    GatewayEvent,
    Mark,
    MarkDone,
    ProtocolViolation,
    Start,
    Stop,
)
from media.g711 import ulaw_decode, ulaw_encode

SAMPLE_RATE: Final = 8000
PROTOCOL_NAME: Final = "Call"
PROTOCOL_VERSION: Final = "1.0.0"
MEDIA_TRACK: Final = "inbound"
DTMF_TRACK: Final = "inbound_track"
STREAM_SID_RE: Final = re.compile(r"MZ[0-9a-fA-F]{32}")

# Twilio agents commonly push whole TTS chunks, so the defaults are looser
# than orbit-voice's; 10 s of mu-law is about 107 KB of base64.
DEFAULT_MAX_TEXT_BYTES: Final = 128 * 1024
DEFAULT_MAX_AUDIO_MS: Final = 10_000


def new_stream_sid(token_hex: Callable[[int], str] = secrets.token_hex) -> str:
    return "MZ" + token_hex(16)


def _param_value(value: Any) -> str:
    # Twilio's customParameters are always strings; non-strings keep their JSON spelling.
    if isinstance(value, str):
        return value
    return dumps(value)


class TwilioCodec:
    """Encoder/decoder for one Twilio-style stream; it numbers the messages it sends."""

    def __init__(
        self,
        account_id: str,
        call_id: str,
        stream_sid: str | None = None,
        *,
        token_hex: Callable[[int], str] = secrets.token_hex,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        max_audio_ms: int = DEFAULT_MAX_AUDIO_MS,
        max_mark_name: int = DEFAULT_MAX_MARK_NAME,
    ) -> None:
        if stream_sid is None:
            stream_sid = new_stream_sid(token_hex)
        if not STREAM_SID_RE.fullmatch(stream_sid):
            raise ValueError(f"streamSid must be 'MZ' + 32 hex digits, got {stream_sid!r}")
        if min(max_text_bytes, max_audio_ms, max_mark_name) <= 0:
            raise ValueError("limits must be positive")
        self.account_id = account_id
        self.call_id = call_id
        self.stream_sid = stream_sid
        self.max_text_bytes = max_text_bytes
        self.max_audio_ms = max_audio_ms
        self.max_audio_bytes = SAMPLE_RATE * max_audio_ms // 1000  # mu-law: 1 byte per sample
        self.max_mark_name = max_mark_name
        self._seq = 0
        self._chunk = 0
        self._samples_sent = 0
        self._started = False
        self._stopped = False

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def subprotocol(self) -> None:
        return None

    def opening_frames(self) -> list[str | bytes]:
        # ``connected`` precedes ``start`` and carries no sequenceNumber.
        return [dumps({"event": "connected", "protocol": PROTOCOL_NAME, "version": PROTOCOL_VERSION})]

    # --- gateway -> agent -----------------------------------------------------

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def encode(self, event: GatewayEvent) -> str | None:
        if isinstance(event, Start):
            return self._encode_start(event)
        if not self._started:
            raise EncodeError(f"{type(event).__name__} before start")
        if self._stopped:
            raise EncodeError(f"{type(event).__name__} after stop")
        if isinstance(event, Audio):
            return self._encode_media(event.pcm)
        if isinstance(event, Dtmf):
            if event.digit not in DTMF_DIGITS:
                raise EncodeError(f"not a DTMF digit: {event.digit!r}")
            return dumps(
                {
                    "event": "dtmf",
                    "streamSid": self.stream_sid,
                    "sequenceNumber": self._next_seq(),
                    "dtmf": {"track": DTMF_TRACK, "digit": event.digit},
                }
            )
        if isinstance(event, MarkDone):
            # Twilio echoes a mark both when it plays and when clear drops it.
            if event.status not in MARK_STATUSES:
                raise EncodeError(f"bad mark status {event.status!r}")
            return dumps(
                {
                    "event": "mark",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "mark": {"name": event.name},
                }
            )
        if isinstance(event, Cleared):
            return None
        if isinstance(event, Stop):
            self._stopped = True
            return dumps(
                {
                    "event": "stop",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": self.account_id, "callSid": self.call_id},
                }
            )
        raise EncodeError(f"not a gateway event: {type(event).__name__}")

    def _encode_start(self, start: Start) -> str:
        if self._started:
            raise EncodeError("start already sent on this stream")
        if start.sample_rate != SAMPLE_RATE:
            raise EncodeError(f"Twilio streams are 8000 Hz, start.sample_rate is {start.sample_rate}")
        if start.call_id != self.call_id or start.account_id != self.account_id:
            raise EncodeError("start.call_id/account_id do not match the codec")
        if start.direction not in DIRECTIONS:
            raise EncodeError(f"bad direction {start.direction!r}")
        params = {str(k): _param_value(v) for k, v in start.metadata.items()}
        # Pipecat's runner reads the numbers from these two parameters.
        params["from_number"] = start.from_
        params["to_number"] = start.to
        self._started = True
        return dumps(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": self.account_id,
                    "callSid": self.call_id,
                    "tracks": [MEDIA_TRACK],
                    "customParameters": params,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE, "channels": 1},
                },
            }
        )

    def _encode_media(self, pcm: bytes) -> str:
        if len(pcm) % 2:
            raise EncodeError("PCM16 audio must have an even number of bytes")
        self._chunk += 1
        # Timestamps count audio sent, which equals wall time because the
        # gateway sends a frame every 20 ms, silence included.
        timestamp_ms = self._samples_sent * 1000 // SAMPLE_RATE
        self._samples_sent += len(pcm) // 2
        return dumps(
            {
                "event": "media",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "media": {
                    "track": MEDIA_TRACK,
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(ulaw_encode(pcm)).decode("ascii"),
                },
            }
        )

    # --- agent -> gateway -----------------------------------------------------

    def decode(self, frame: str | bytes) -> AgentEvent | ProtocolViolation:
        if isinstance(frame, (bytes, bytearray, memoryview)):
            return violation("binary_not_allowed", "Twilio media streams carry JSON text frames only")
        if not isinstance(frame, str):
            return violation("bad_value", f"frame is {type(frame).__name__}, not str or bytes")
        msg = parse_json_object(frame, self.max_text_bytes)
        if isinstance(msg, ProtocolViolation):
            return msg
        if "event" not in msg:
            return violation("missing_field", "missing 'event'")
        event = msg["event"]
        if not isinstance(event, str):
            return violation("bad_value", "'event' must be a string")
        # streamSid and any other extra fields (Pipecat sends streamSid) are ignored.
        if event == "media":
            return self._decode_media(msg)
        if event == "mark":
            return self._decode_mark(msg)
        if event == "clear":
            return Clear()
        return violation("unknown_type", f"unknown event {event[:40]!r}")

    def _decode_media(self, msg: dict[str, Any]) -> AgentAudio | ProtocolViolation:
        if "media" not in msg:
            return violation("missing_field", "media: missing 'media'")
        media = msg["media"]
        if not isinstance(media, dict):
            return violation("bad_value", "media: 'media' must be an object")
        if "payload" not in media:
            return violation("missing_field", "media: missing 'media.payload'")
        payload = media["payload"]
        if not isinstance(payload, str):
            return violation("bad_value", "media: 'media.payload' must be a string")
        # Reject by encoded length first so an oversized payload is never decoded.
        if (len(payload) // 4) * 3 > self.max_audio_bytes + 2:
            return violation("oversized_frame", f"media payload over {self.max_audio_ms} ms")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return violation("bad_value", "media: 'media.payload' is not valid base64")
        if len(raw) > self.max_audio_bytes:
            return violation("oversized_frame", f"media payload over {self.max_audio_ms} ms")
        return AgentAudio(ulaw_decode(raw))

    def _decode_mark(self, msg: dict[str, Any]) -> Mark | ProtocolViolation:
        if "mark" not in msg:
            return violation("missing_field", "mark: missing 'mark'")
        mark = msg["mark"]
        if not isinstance(mark, dict):
            return violation("bad_value", "mark: 'mark' must be an object")
        name = require_str(mark, "name", "mark", max_len=self.max_mark_name)
        return name if isinstance(name, ProtocolViolation) else Mark(name)
