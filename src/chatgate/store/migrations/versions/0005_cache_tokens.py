"""The cache token counts of a log: what the provider read from and wrote to its prompt cache.

Revision ID: 0005_cache_tokens
Revises: 0004_log_search

Both columns are nullable and have no default, so existing logs read as "not reported" and
adding them is a metadata-only change on SQLite and PostgreSQL (no table rewrite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_cache_tokens"
down_revision = "0004_log_search"
branch_labels = None
depends_on = None

_COLUMNS = ("cache_read_tokens", "cache_write_tokens")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("logs", sa.Column(name, sa.Integer, nullable=True))


def downgrade() -> None:
    # SQLite can drop a column only by rebuilding the table: batch mode does that.
    with op.batch_alter_table("logs") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
