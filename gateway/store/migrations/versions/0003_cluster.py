"""What several nodes on one database need, and what ending a call from another process needs.

- calls.sip_leg: what ending the call's SIP leg takes (BYE or CANCEL from any node).
- calls.trunk_slot: the call holds one of its trunk's concurrent slots (counted cluster-wide).
- gateway_nodes: each node's lease (renewed while it runs; expired = the node is lost).
- trunk_pacing: when each trunk may send its next INVITE (calls_per_second, cluster-wide).
- call_commands: requests to the node that carries a call (hang up), durable across a missed
  notification.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("sip_leg", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("trunk_slot", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_calls_trunk_status", "calls", ["trunk_id", "status"])
    op.create_table(
        "gateway_nodes",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("http_url", sa.Text(), nullable=True),
        sa.Column("sip_address", sa.Text(), nullable=True),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("renewed_at", UtcDateTime, nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.Column("lost_at", UtcDateTime, nullable=True),
        sa.Column("reaped_by", sa.String(64), nullable=True),
    )
    op.create_table(
        "trunk_pacing",
        sa.Column("trunk_id", sa.String(64), primary_key=True),
        sa.Column("next_slot_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "call_commands",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("claimed_at", UtcDateTime, nullable=True),
        sa.Column("done_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_call_commands_pending", "call_commands", ["node_id", "claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_call_commands_pending", "call_commands")
    op.drop_table("call_commands")
    op.drop_table("trunk_pacing")
    op.drop_table("gateway_nodes")
    op.drop_index("ix_calls_trunk_status", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("trunk_slot")
        batch.drop_column("sip_leg")
