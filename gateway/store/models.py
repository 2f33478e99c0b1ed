"""Tables: calls, their events (the webhook outbox), webhook deliveries, gateway nodes and secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON}


class CallRow(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    record: Mapped[bool] = mapped_column(Boolean, default=False)
    max_duration: Mapped[int] = mapped_column(Integer)
    call_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    trunk_id: Mapped[str | None] = mapped_column(String(64))
    # Which gateway node runs the live call; used to reconcile after a crash.
    node_id: Mapped[str | None] = mapped_column(String(64))
    sip_call_id: Mapped[str | None] = mapped_column(String(255))
    sip_status: Mapped[int | None] = mapped_column(Integer)
    sip_reason: Mapped[str | None] = mapped_column(String(255))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    hangup_side: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    ringing_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    agent_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    media_stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    recording_state: Mapped[str | None] = mapped_column(String(16))
    recording_key: Mapped[str | None] = mapped_column(Text)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    # While the call is live: what ending its SIP leg takes (gateway.sip.snapshot), so that a
    # node settling it after a crash can send the BYE or CANCEL.
    sip_leg: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Holds one of its trunk's concurrent slots, counted across every node while the call is live.
    trunk_slot: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # Keyset pagination of one account's calls, newest first, optionally by status.
        Index("ix_calls_account_created", "account_id", "created_at", "id"),
        Index("ix_calls_account_status_created", "account_id", "status", "created_at", "id"),
        Index("ix_calls_status_node", "status", "node_id"),
        Index("ix_calls_trunk_status", "trunk_id", "status"),
    )


class EventRow(Base):
    """A call event, written in the same transaction as the change it reports (the outbox)."""

    __tablename__ = "call_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ux_call_events_call_seq", "call_id", "seq", unique=True),)


class DeliveryRow(Base):
    """One event to one webhook URL: attempts, schedule and outcome."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("call_events.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_call_url_seq", "call_id", "url", "seq"),
    )


class NodeRow(Base):
    """A gateway node and its lease: while `renewed_at + lease_seconds` is ahead, the node runs
    and carries its calls; after that a peer takes over (state `lost`)."""

    __tablename__ = "gateway_nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # up, stopped, lost
    version: Mapped[str] = mapped_column(String(32))
    http_url: Mapped[str | None] = mapped_column(Text)
    sip_address: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    renewed_at: Mapped[datetime]
    lease_seconds: Mapped[float] = mapped_column(Float)
    lost_at: Mapped[datetime | None]
    reaped_by: Mapped[str | None] = mapped_column(String(64))


class TrunkPacingRow(Base):
    """When a trunk may send its next INVITE (its calls_per_second, held across nodes)."""

    __tablename__ = "trunk_pacing"

    trunk_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_slot_at: Mapped[datetime]


class CommandRow(Base):
    """A request to the node carrying a call (e.g. hang it up), kept until that node has done it."""

    __tablename__ = "call_commands"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(40))
    node_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_call_commands_pending", "node_id", "claimed_at"),)


class SecretRow(Base):
    __tablename__ = "gateway_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
