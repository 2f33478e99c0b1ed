"""Initial schema: calls, call events (outbox), webhook deliveries, gateway secrets.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("to_number", sa.String(20), nullable=False),
        sa.Column("from_number", sa.String(20), nullable=False),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("record", sa.Boolean, nullable=False),
        sa.Column("max_duration", sa.Integer, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("webhook_url", sa.Text),
        sa.Column("trunk_id", sa.String(64)),
        sa.Column("node_id", sa.String(64)),
        sa.Column("sip_call_id", sa.String(255)),
        sa.Column("sip_status", sa.Integer),
        sa.Column("sip_reason", sa.String(255)),
        sa.Column("hangup_cause", sa.String(64)),
        sa.Column("hangup_side", sa.String(16)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("ringing_at", UtcDateTime),
        sa.Column("answered_at", UtcDateTime),
        sa.Column("ended_at", UtcDateTime),
        sa.Column("agent_summary", sa.JSON),
        sa.Column("media_stats", sa.JSON),
        sa.Column("recording_state", sa.String(16)),
        sa.Column("recording_key", sa.Text),
        sa.Column("event_seq", sa.Integer, nullable=False),
    )
    op.create_index("ix_calls_account_created", "calls", ["account_id", "created_at", "id"])
    op.create_index("ix_calls_account_status_created", "calls", ["account_id", "status", "created_at", "id"])
    op.create_index("ix_calls_status_node", "calls", ["status", "node_id"])

    op.create_table(
        "call_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("call_id", sa.String(40), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ux_call_events_call_seq", "call_events", ["call_id", "seq"], unique=True)

    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("delivery_id", sa.String(40), nullable=False, unique=True),
        sa.Column(
            "event_id", sa.String(40), sa.ForeignKey("call_events.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", UtcDateTime),
    )
    op.create_index("ix_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_call_url_seq", "webhook_deliveries", ["call_id", "url", "seq"])

    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_secrets")
    op.drop_table("webhook_deliveries")
    op.drop_table("call_events")
    op.drop_table("calls")
