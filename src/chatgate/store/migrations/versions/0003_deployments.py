"""Environments, deployments and project configs.

Revision ID: 0003_deployments
Revises: 0002_feedback
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_deployments"
down_revision = "0002_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
