"""The endpoint an organisation's saved provider key may be sent to (Azure OpenAI's resource URL).

Revision ID: 0006_provider_key_endpoint
Revises: 0005_cache_tokens

A saved key goes only to the endpoint saved with it, never to one a caller names in a request.
Keys saved before this column existed have none: they go to the provider's configured endpoint.
Nullable without a default, so adding it is a metadata-only change on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_provider_key_endpoint"
down_revision = "0005_cache_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("provider_keys", sa.Column("endpoint", sa.String(2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_keys") as batch:
        batch.drop_column("endpoint")
