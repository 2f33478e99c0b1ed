"""The call record as the store keeps it and every layer above reads it; list filters and pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.outcome import CallStatus


@dataclass(slots=True)
class Call:
    id: str
    account_id: str
    to: str
    from_: str
    agent_id: str | None
    status: CallStatus
    record: bool
    max_duration: int
    metadata: dict[str, Any]
    webhook_url: str | None
    created_at: datetime
    trunk_id: str | None = None
    node_id: str | None = None
    sip_call_id: str | None = None
    sip_status: int | None = None
    sip_reason: str | None = None
    hangup_cause: str | None = None
    hangup_side: str | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    agent_summary: dict[str, Any] | None = None
    media_stats: dict[str, Any] | None = None
    recording_state: str | None = None
    recording_key: str | None = None
    event_seq: int = 0
    sip_leg: dict[str, Any] | None = None  # see gateway.sip.snapshot.LegSnapshot
    trunk_slot: bool = False  # holds one of its trunk's concurrent slots


@dataclass(frozen=True, slots=True)
class ListFilters:
    status: CallStatus | None = None
    from_: str | None = None
    to: str | None = None

    def fingerprint(self) -> str:
        return f"{self.status or ''}|{self.from_ or ''}|{self.to or ''}"


@dataclass(frozen=True, slots=True)
class Page:
    calls: list[Call]
    total: int
    has_more: bool
    after: tuple[datetime, str] | None = field(default=None)
