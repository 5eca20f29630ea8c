"""Feedback and feedback types, and the columns of logs that only POST /v4/logs sets.

Revision ID: 0002_feedback
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_feedback"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def _log_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("updated_at", sa.Double, nullable=True),
        sa.Column("judgment", sa.Text, nullable=True),
        sa.Column("environment", sa.String(200), nullable=True),
        sa.Column("stdout", sa.Text, nullable=True),
        sa.Column("prompt_cost", sa.Double, nullable=True),
        sa.Column("output_cost", sa.Double, nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        for column in _log_columns():
            batch.add_column(column)
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("log_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("user", sa.String(500), nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_feedback_org_id_organizations"
        ),
        sa.ForeignKeyConstraint(["log_id"], ["logs.id"], name="fk_feedback_log_id_logs"),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_log", "feedback", ["log_id", "created_at"])
    op.create_table(
        "feedback_types",
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("class", sa.String(32), nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_feedback_types_project_id_projects"
        ),
        sa.PrimaryKeyConstraint("project_id", "type", name="pk_feedback_types"),
    )


def downgrade() -> None:
    op.drop_table("feedback_types")
    op.drop_index("ix_feedback_log", table_name="feedback")
    op.drop_table("feedback")
    with op.batch_alter_table("logs") as batch:
        for column in reversed(_log_columns()):
            batch.drop_column(column.name)
