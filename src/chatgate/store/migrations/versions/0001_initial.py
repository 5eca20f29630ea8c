"""Initial schema: organisations, keys, provider keys, projects, sessions, configs, logs.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("name", name="uq_organizations_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_api_keys_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_table(
        "provider_keys",
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_provider_keys_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("org_id", "provider", name="pk_provider_keys"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_projects_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("org_id", "name", name="uq_projects_org_id_name"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("reference_id", sa.String(500), nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_sessions_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("org_id", "reference_id", name="uq_sessions_org_id_reference_id"),
    )
    op.create_table(
        "model_configs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("name", sa.String(500), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_model_configs_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_configs"),
        sa.UniqueConstraint("org_id", "fingerprint", name="uq_model_configs_org_id_fingerprint"),
    )
    op.create_table(
        "logs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("parent_id", sa.String(40), nullable=True),
        sa.Column("reference_id", sa.String(500), nullable=True),
        sa.Column("config_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("sample_index", sa.Integer, nullable=False),
        sa.Column("save", sa.Boolean, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=True),
        sa.Column("messages", sa.JSON, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("raw_output", sa.Text, nullable=True),
        sa.Column("output_message", sa.JSON, nullable=True),
        sa.Column("finish_reason", sa.String(64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("reasoning_tokens", sa.Integer, nullable=True),
        sa.Column("duration", sa.Double, nullable=True),
        sa.Column("provider_latency", sa.Double, nullable=True),
        sa.Column("provider_request", sa.JSON, nullable=True),
        sa.Column("provider_response", sa.JSON, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("source_datapoint_id", sa.String(100), nullable=True),
        sa.Column("user", sa.String(500), nullable=True),
        sa.Column("tool_choice", sa.JSON, nullable=True),
        sa.Column("tools", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_logs_org_id_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_logs_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_logs_session_id_sessions"
        ),
        sa.ForeignKeyConstraint(
            ["config_id"], ["model_configs.id"], name="fk_logs_config_id_model_configs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_logs"),
    )
    op.create_index("ix_logs_org_project_created", "logs", ["org_id", "project_id", "created_at"])
    op.create_index("ix_logs_org_created", "logs", ["org_id", "created_at"])
    op.create_index("ix_logs_session", "logs", ["session_id"])
    op.create_index("ix_logs_org_reference", "logs", ["org_id", "reference_id"])


def downgrade() -> None:
    for name in ("logs", "model_configs", "sessions", "projects", "provider_keys", "api_keys"):
        op.drop_table(name)
    op.drop_table("organizations")
