"""Alembic environment: migrations run on a connection handed over by the gateway at start."""

from __future__ import annotations

from alembic import context

from gateway.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("gateway migrations run through gateway.store.db.migrate(), which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
