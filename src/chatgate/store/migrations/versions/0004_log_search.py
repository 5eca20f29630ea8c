"""Trigram indexes for the substring searches of GET /v4/logs, on PostgreSQL.

Revision ID: 0004_log_search
Revises: 0003_deployments

``search`` and ``metadata_search`` are case-insensitive substring matches
(``lower(column::text) LIKE '%term%'``, store/logs_repo.py). Without an index they read every
log of the project; pg_trgm's GIN indexes on exactly those expressions let PostgreSQL find the
candidate rows for any term of three characters or more.

pg_trgm ships with PostgreSQL (contrib) and is a trusted extension, so a database owner may
create it. Where it is missing or may not be created (some managed services), the migration
logs a warning and leaves the indexes out: searches still work, by scanning.

SQLite gets no index: its trigram index (FTS5) costs the log writer 0.3 to 1.3 ms of CPU per
1 to 4 KB log, on the core that serves the requests; docs/operations.md has the trade-off.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004_log_search"
down_revision = "0003_deployments"
branch_labels = None
depends_on = None

log = logging.getLogger("chatgate.migrations")

#: Index name → the expression logs_repo's filters compare, as PostgreSQL prints it back.
SEARCH_INDEXES = {
    "ix_logs_search_inputs": "lower((inputs)::text)",
    "ix_logs_search_output": "lower(output)",
    "ix_logs_search_metadata": "lower((metadata)::text)",
}


def _trigram_extension(bind: sa.Connection) -> bool:
    if not bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar():
        log.warning("pg_trgm is not installed: log searches will scan instead of using an index")
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("cannot create the pg_trgm extension (%s): log searches will scan", exc.orig)
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _trigram_extension(bind):
        return
    for name, expression in SEARCH_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON logs USING gin (({expression}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in SEARCH_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
