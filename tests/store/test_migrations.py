"""The Alembic migrations produce exactly the schema of store/schema.py."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chatgate.store.schema import include_in_comparison, metadata
from chatgate.store.sql import Store


def test_migrations_match_schema(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.upgrade()
    with store.engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"include_object": include_in_comparison}),
            metadata,
        )
    assert diff == []


def test_upgrade_is_idempotent_and_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.upgrade()
    store.upgrade()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        version = connection.execute(sa.text("select version_num from alembic_version")).scalar()
    from chatgate.store.migrate import HEAD

    assert version == HEAD


def test_head_constant_is_alembics_head(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from chatgate.store.migrate import HEAD, alembic_config

    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as connection:
        script = ScriptDirectory.from_config(alembic_config(connection))
    assert script.get_current_head() == HEAD
