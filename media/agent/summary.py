"""Counters of one call's agent session, and the ``agent_summary`` dict built from them.

``AgentSessionStats.as_dict()`` is what ``GET /v1/voice/calls/{id}`` shows as
``agent_summary``; every key is always present (``None`` when unknown) so the
shape does not depend on how far the call got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from media.agent.events import VIOLATION_KINDS, ViolationKind
from media.timeutil import iso

__all__ = ["AgentSessionStats"]


@dataclass(slots=True)
class AgentSessionStats:
    agent_id: str
    protocol: str
    sample_rate: int
    connected_at: datetime | None = None
    disconnected_at: datetime | None = None
    connect_ms: int | None = None
    answer_to_first_audio_ms: int | None = None
    caller_frames_sent: int = 0
    caller_frames_dropped: int = 0
    agent_audio_played_bytes: int = 0
    agent_audio_cleared_bytes: int = 0
    agent_audio_overflow_bytes: int = 0
    agent_audio_trimmed_bytes: int = 0
    interruptions: int = 0
    marks_played: int = 0
    marks_cleared: int = 0
    dtmf_received: str = ""
    dtmf_sent: str = ""
    reconnects: int = 0
    reconnect_attempts: int = 0
    violations: dict[ViolationKind, int] = field(default_factory=dict)
    end_reason: str | None = None
    agent_data: dict[str, Any] | None = None

    @property
    def protocol_violations(self) -> int:
        return sum(self.violations.values())

    def count_violation(self, kind: ViolationKind) -> None:
        self.violations[kind] = self.violations.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        # Agent audio is counted in bytes of 8 kHz PCM16 (16 bytes per ms) after resampling.
        return {
            "agent_id": self.agent_id,
            "protocol": self.protocol,
            "sample_rate": self.sample_rate,
            "connected_at": iso(self.connected_at),
            "disconnected_at": iso(self.disconnected_at),
            "connect_ms": self.connect_ms,
            "answer_to_first_audio_ms": self.answer_to_first_audio_ms,
            "caller_audio_ms": self.caller_frames_sent * 20,
            "caller_audio_dropped_ms": self.caller_frames_dropped * 20,
            "agent_audio_ms": round(self.agent_audio_played_bytes / 16),
            "agent_audio_cleared_ms": round(self.agent_audio_cleared_bytes / 16),
            "agent_audio_overflow_ms": round(self.agent_audio_overflow_bytes / 16),
            "agent_audio_trimmed_ms": round(self.agent_audio_trimmed_bytes / 16),
            "interruptions": self.interruptions,
            "marks": {"played": self.marks_played, "cleared": self.marks_cleared},
            "dtmf_received": self.dtmf_received,
            "dtmf_sent": self.dtmf_sent,
            "reconnects": self.reconnects,
            "reconnect_attempts": self.reconnect_attempts,
            "protocol_violations": self.protocol_violations,
            "protocol_violations_by_kind": {
                k: self.violations[k] for k in VIOLATION_KINDS if k in self.violations
            },
            "end_reason": self.end_reason,
            "summary": self.agent_data,
        }
