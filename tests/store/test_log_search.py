"""GET /v4/logs' substring searches in the store: the same answers on both backends, and on
PostgreSQL answered from migration 0004's trigram indexes instead of a scan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatgate.domain import LogRecord
from chatgate.domain.logs import LogFilter
from chatgate.store import schema as t
from chatgate.store.logs_repo import LogsRepo
from chatgate.store.sql import Store

FILLER = 2_000


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'search.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store(url)
    store.upgrade()
    yield store
    store.close()


def _fill(store: Store) -> tuple[str, str]:
    org_id = store.orgs.get_or_create_org("acme")
    project_id = store.projects.get_or_create_project(org_id, "p")
    config_id = store.projects.get_or_create_config(org_id, "c" * 64, {"model": "m"}, None, None)
    now = time.time()

    def log(i: int, **fields: object) -> LogRecord:
        values: dict[str, object] = {
            "id": f"data_{i:08d}",
            "org_id": org_id,
            "project_id": project_id,
            "config_id": config_id,
            "provider": "openai",
            "model": "gpt-4o",
            "inputs": {"question": f"ordinary question {i}"},
            "output": f"an ordinary answer number {i}",
            "metadata": {"user": f"u{i % 50}"},
            "created_at": now + i,
        }
        values.update(fields)
        return LogRecord(**values)  # type: ignore[arg-type]

    records = [log(i) for i in range(FILLER)]
    records += [
        log(FILLER, output="The Zanzibar ledger balances"),
        log(FILLER + 1, inputs={"city": "zanzibar"}),
        log(FILLER + 2, metadata={"team": "Zanzibar", "tier": 2}),
        log(FILLER + 3, output="100% sure, snake_case"),
    ]
    store.insert_logs(records)
    if not store.is_sqlite:
        with store.engine.begin() as c:
            c.exec_driver_sql("ANALYZE logs")
    return org_id, project_id


def _ids(store: Store, org_id: str, where: LogFilter) -> list[str]:
    page = store.logs.list_logs(org_id, where, offset=0, limit=50)
    return sorted(row.id for row in page.rows)


def test_searches_match_case_insensitive_substrings_on_both_backends(store: Store) -> None:
    org_id, project_id = _fill(store)
    n = FILLER
    assert _ids(store, org_id, LogFilter(project_id=project_id, search="ZANZIBAR")) == [
        f"data_{n:08d}",
        f"data_{n + 1:08d}",
    ]
    assert _ids(store, org_id, LogFilter(project_id=project_id, metadata_search="zanzibar")) == [
        f"data_{n + 2:08d}"
    ]
    assert _ids(store, org_id, LogFilter(metadata_search='"tier": 2')) == [f"data_{n + 2:08d}"]
    # LIKE's wildcards in a term are literal characters.
    assert _ids(store, org_id, LogFilter(search="100%")) == [f"data_{n + 3:08d}"]
    assert _ids(store, org_id, LogFilter(search="e_c")) == [f"data_{n + 3:08d}"]
    assert _ids(store, org_id, LogFilter(search="nowhere-to-be-found")) == []
    other_org = store.orgs.get_or_create_org("other")
    assert _ids(store, other_org, LogFilter(search="zanzibar")) == []


def _plan(store: Store, where: LogFilter) -> str:
    """EXPLAIN of the filter's search condition alone (without the org and project conditions,
    which a table of a few thousand rows answers more cheaply: bench/store_bench.py shows the
    planner's choice over a million rows)."""
    search_condition = LogsRepo.conditions("org", where)[-1]
    count = sa.select(sa.func.count()).select_from(t.logs).where(search_condition)
    compiled = str(count.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.begin() as c:
        c.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(row[0] for row in c.exec_driver_sql(f"EXPLAIN {compiled}"))


def test_postgresql_search_conditions_are_served_by_the_trigram_indexes(store: Store) -> None:
    if store.is_sqlite:
        pytest.skip("SQLite searches scan (see migration 0004)")
    _fill(store)
    plan = _plan(store, LogFilter(search="zanzibar"))
    assert "ix_logs_search_inputs" in plan and "ix_logs_search_output" in plan, plan
    assert "Seq Scan" not in plan, plan
    plan = _plan(store, LogFilter(metadata_search='"tier": 2'))
    assert "ix_logs_search_metadata" in plan and "Seq Scan" not in plan, plan


def test_without_pg_trgm_rights_the_migration_leaves_the_indexes_out_and_search_works(
    postgres_server: str,
) -> None:
    """A managed database where the owner may not create extensions: still migrates, still
    searches (by scanning)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    role = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'CREATE DATABASE "{name}"')  # owned by the superuser, not by the role
    with psycopg.connect(
        postgres_server.replace("/postgres?", f"/{name}?", 1), autocommit=True
    ) as db:
        db.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{role}"')
        db.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"')
    url = postgres_server.replace("postgres:@/postgres?", f"{role}:@/{name}?", 1)
    store = Store(url)
    try:
        store.upgrade()
        with store.engine.connect() as c:
            indexes = {
                row[0]
                for row in c.exec_driver_sql(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'logs'"
                )
            }
        assert "ix_logs_org_project_created" in indexes
        assert not indexes & {"ix_logs_search_inputs", "ix_logs_search_output"}
        org_id, project_id = _fill(store)
        assert _ids(store, org_id, LogFilter(project_id=project_id, search="zanzibar")) == [
            f"data_{FILLER:08d}",
            f"data_{FILLER + 1:08d}",
        ]
    finally:
        store.close()
