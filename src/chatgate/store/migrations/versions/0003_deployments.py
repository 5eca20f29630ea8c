"""Environments, deployments and project configs.

Revision ID: 0003_deployments
Revises: 0002_feedback

Existing organisations get their default environment lazily (store/projects_repo.py), so this
migration only creates tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_deployments"
down_revision = "0002_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tag", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_environments_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("org_id", "name", name="uq_environments_org_id_name"),
    )
    op.create_table(
        "deployments",
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("environment_id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("config_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_deployments_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name="fk_deployments_environment_id_environments",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_deployments_org_id_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["config_id"], ["model_configs.id"], name="fk_deployments_config_id_model_configs"
        ),
        sa.PrimaryKeyConstraint("project_id", "environment_id", name="pk_deployments"),
    )
    op.create_table(
        "project_configs",
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("config_id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_configs_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["config_id"], ["model_configs.id"], name="fk_project_configs_config_id_model_configs"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_project_configs_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("project_id", "config_id", name="pk_project_configs"),
    )


def downgrade() -> None:
    for name in ("project_configs", "deployments", "environments"):
        op.drop_table(name)
