"""Alembic environment: runs on the connection ``Store.open`` passes in (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from aggregator.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
