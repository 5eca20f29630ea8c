"""Alembic environment: run by ``chatgate db upgrade`` and on server start (store/migrate.py)."""

from __future__ import annotations

from alembic import context

from chatgate.store.schema import include_in_comparison, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    include_object=include_in_comparison,
)
with context.begin_transaction():
    context.run_migrations()
