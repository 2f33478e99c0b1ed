"""The call object as the API and webhooks show it (field names and shapes of the seed)."""

from __future__ import annotations

from typing import Any

from gateway.store.records import Call
from gateway.timeutil import iso, whole_seconds_between


def duration_seconds(call: Call) -> int | None:
    """Whole seconds from created_at to ended_at, as the seed's examples count; null while live."""
    if call.ended_at is None:
        return None
    return whole_seconds_between(call.created_at, call.ended_at)


def call_view(call: Call, recording_url: str | None = None) -> dict[str, Any]:
    return {
        "id": call.id,
        "to": call.to,
        "from": call.from_,
        "agent_id": call.agent_id,
        "status": str(call.status),
        "record": call.record,
        "recording_url": recording_url,
        "recording_status": call.recording_state,
        "duration_seconds": duration_seconds(call),
        "max_duration": call.max_duration,
        "metadata": call.metadata,
        "created_at": iso(call.created_at),
        "ringing_at": iso(call.ringing_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "hangup_cause": call.hangup_cause,
        "hangup_side": call.hangup_side,
        "sip_status": call.sip_status,
        "sip_reason": call.sip_reason,
        "agent_summary": call.agent_summary,
        "media_stats": call.media_stats,
    }


def hangup_view(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "status": str(call.status),
        "ended_at": iso(call.ended_at),
        "duration_seconds": duration_seconds(call),
    }
