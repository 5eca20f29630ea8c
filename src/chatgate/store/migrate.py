"""Bring a database to the newest schema with the Alembic migrations shipped in the package.

Alembic (and Mako with it) is imported only when there is something to migrate: a server that
starts on an up-to-date database never loads it, which keeps its memory small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

MIGRATIONS = Path(__file__).with_name("migrations")


def _head() -> str:
    # Convention: a migration's file is named after its revision id, numbered in order
    # (0001_initial.py has revision "0001_initial"); a test checks this against Alembic.
    return max(p.stem for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


#: The newest revision in migrations/versions.
HEAD = _head()


def current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with engine.connect() as connection:
        if revision == "head" and current_revision(connection) == HEAD:
            return
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
