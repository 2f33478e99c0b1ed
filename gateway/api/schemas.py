"""Request and response schemas of the Voice API, per direction (they also produce /openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from gateway.numbers import PhoneNumber
from gateway.outcome import CallStatus


class CallCreate(BaseModel):
    """Body of `POST /v1/voice/calls`. Fields not listed are ignored; null is the same as absent
    for the optional text fields."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    to: PhoneNumber = Field(
        description="Destination phone number in E.164 format (e.g., +14155552671)",
    )
    from_: PhoneNumber | None = Field(
        None,
        alias="from",
        description="Caller ID: a number registered to your account (defaults to the account's default number)",
        examples=["+12025551234"],
    )
    agent_id: StrictStr | None = Field(
        None, min_length=1, max_length=64, description="AI agent to handle the call (omit for raw SIP)"
    )
    webhook_url: StrictStr | None = Field(
        None, min_length=1, max_length=2048, description="URL to receive call status callbacks"
    )
    record: StrictBool = Field(False, description="Whether to record the call")
    max_duration: StrictInt = Field(
        3600,
        ge=1,
        description="Maximum call duration in seconds (default 1 hour, or as the operator set it; "
        "upper bound set by the operator)",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Arbitrary key-value pairs attached to the call"
    )


class Meta(BaseModel):
    request_id: str = Field(examples=["req_9f2c4e0b8a1d3c5e7f901234"])
    timestamp: str = Field(examples=["2026-03-08T12:00:00Z"])


class Pagination(BaseModel):
    cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")
    has_more: bool
    total: int = Field(description="Calls matching the filters")


class ListMeta(Meta):
    pagination: Pagination


class CallOut(BaseModel):
    id: str = Field(examples=["call_3b1f0c9e2d4a6b8c0e1f2a3b"])
    to: str
    from_: str = Field(alias="from")
    agent_id: str | None
    status: CallStatus
    record: bool
    recording_url: str | None
    recording_status: str | None = Field(description="pending, available or failed; null when not recorded")
    duration_seconds: int | None = Field(
        description="Whole seconds from created_at to ended_at; null while live"
    )
    max_duration: int
    metadata: dict[str, Any]
    created_at: str
    ringing_at: str | None
    answered_at: str | None
    ended_at: str | None
    hangup_cause: str | None
    hangup_side: str | None = Field(description="local (gateway/API/agent) or remote (called party/network)")
    sip_status: int | None = Field(description="Final SIP status of the call attempt")
    sip_reason: str | None
    agent_summary: dict[str, Any] | None = Field(description="Agent interaction summary")
    media_stats: dict[str, Any] | None


class HangupOut(BaseModel):
    id: str
    status: CallStatus
    ended_at: str | None
    duration_seconds: int | None


class CallEnvelope(BaseModel):
    data: CallOut
    meta: Meta


class CallListEnvelope(BaseModel):
    data: list[CallOut]
    meta: ListMeta


class HangupEnvelope(BaseModel):
    data: HangupOut
    meta: Meta


class ErrorBody(BaseModel):
    code: str = Field(examples=["INVALID_PHONE_NUMBER"])
    message: str
    status: int
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody
    meta: Meta


class Health(BaseModel):
    status: str
