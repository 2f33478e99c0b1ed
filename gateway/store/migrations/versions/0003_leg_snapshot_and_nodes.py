"""Calls keep what ending their SIP leg takes (for the node that settles them after a crash);
nodes keep a heartbeat (when a node was last known to carry its calls).

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
    op.create_table(
        "gateway_nodes",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("heartbeat_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_nodes")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("sip_leg")
