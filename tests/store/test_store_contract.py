"""One contract for the store, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chatgate.domain import LogRecord
from chatgate.domain.orgs import SavedProviderKey
from chatgate.store.migrate import upgrade
from chatgate.store.schema import include_in_comparison, metadata
from chatgate.store.sql import Store, hash_key


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.upgrade()
    yield store
    store.close()


def record(store: Store, org_id: str, log_id: str, **fields: object) -> LogRecord:
    project_id = store.projects.get_or_create_project(org_id, "p")
    config_id = store.projects.get_or_create_config(org_id, "c" * 64, {"model": "m"}, None, None)
    values: dict[str, object] = {
        "id": log_id,
        "org_id": org_id,
        "project_id": project_id,
        "config_id": config_id,
        "provider": "openai",
        "model": "gpt-4o",
        "created_at": time.time(),
    }
    values.update(fields)
    return LogRecord(**values)  # type: ignore[arg-type]


def test_schema_matches_the_migrations(store: Store) -> None:
    with store.engine.connect() as connection:
        assert (
            compare_metadata(
                MigrationContext.configure(
                    connection, opts={"include_object": include_in_comparison}
                ),
                metadata,
            )
            == []
        )


def test_organisations_and_keys(store: Store) -> None:
    org_id = store.orgs.get_or_create_org("acme")
    assert store.orgs.get_or_create_org("acme") == org_id
    assert store.orgs.org_id_by_name("acme") == org_id and store.orgs.org_id_by_name("nope") is None
    store.orgs.add_api_key(org_id, "cg_prefix01", hash_key("cg_prefix01secret"))
    row = store.orgs.api_key_by_prefix("cg_prefix01")
    assert (
        row is not None and row.org_name == "acme" and row.key_hash == hash_key("cg_prefix01secret")
    )
    store.orgs.touch_api_keys({row.id: 123.0})
    assert store.orgs.list_api_keys(org_id)[0].last_used_at == 123.0
    assert store.orgs.revoke_api_key("cg_prefix01") and not store.orgs.revoke_api_key("cg_prefix01")
    assert store.orgs.api_key_by_prefix("cg_prefix01").revoked_at is not None  # type: ignore[union-attr]


def test_get_or_create_is_safe_under_concurrency(store: Store) -> None:
    org_id = store.orgs.get_or_create_org("acme")
    results: list[str] = []

    def create() -> None:
        results.append(store.projects.get_or_create_project(org_id, "raced"))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 8


def test_rows_are_scoped_to_their_organisation(store: Store) -> None:
    acme, globex = store.orgs.get_or_create_org("acme"), store.orgs.get_or_create_org("globex")
    project = store.projects.get_or_create_project(acme, "shared-name")
    assert store.projects.get_or_create_project(globex, "shared-name") != project
    assert (
        store.projects.project(globex, project) is None
        and store.projects.project(acme, project) is not None
    )
    session = store.projects.get_or_create_session(acme, "ref")
    assert store.projects.session(globex, session) is None
    config = store.projects.get_or_create_config(acme, "f" * 64, {"model": "m"}, "n", None)
    assert (
        store.projects.get_or_create_config(acme, "f" * 64, {"model": "m"}, "other", None) == config
    )
    assert store.projects.config(globex, config) is None
    store.insert_logs([record(store, acme, "data_a1")])
    assert store.logs.log(globex, "data_a1") is None
    assert store.logs.log(acme, "data_a1") is not None
    assert store.logs.log_ref(globex, log_id="data_a1") is None


def test_log_round_trip_keeps_every_field(store: Store) -> None:
    org_id = store.orgs.get_or_create_org("acme")
    session_id = store.projects.get_or_create_session(org_id, "s-1")
    parent = record(store, org_id, "data_parent", session_id=session_id, reference_id="ref-1")
    child = record(
        store,
        org_id,
        "data_child",
        session_id=session_id,
        parent_id="data_parent",
        inputs={"a": [1, "é", None]},
        messages=[{"role": "user", "content": "hi"}],
        output="out",
        raw_output=" out ",
        output_message={"role": "assistant", "content": " out "},
        finish_reason="stop",
        prompt_tokens=3,
        output_tokens=4,
        reasoning_tokens=0,
        cache_read_tokens=2,
        cache_write_tokens=0,
        duration=0.5,
        provider_latency=0.25,
        provider_request={"model": "gpt-4o"},
        provider_response={"id": "x"},
        metadata={"k": {"nested": True}},
        source="s",
        user="u",
        tool_choice={"type": "function"},
        tools=[{"name": "t"}],
        error=None,
        save=True,
        sample_index=1,
    )
    store.insert_logs([parent, child])
    row = store.logs.log(org_id, "data_child")
    assert row is not None
    for field in (
        "inputs",
        "messages",
        "output",
        "raw_output",
        "output_message",
        "finish_reason",
        "prompt_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "duration",
        "provider_latency",
        "provider_request",
        "provider_response",
        "metadata",
        "source",
        "user",
        "tool_choice",
        "tools",
        "sample_index",
        "created_at",
    ):
        assert getattr(row, field) == getattr(child, field), field
    assert row.project_name == "p" and row.session_reference_id == "s-1"
    assert row.parent_reference_id == "ref-1"
    ref = store.logs.log_ref(org_id, reference_id="ref-1")
    assert ref is not None and ref.id == "data_parent" and ref.session_id == session_id
    summary = store.logs.session_summary(org_id, session_id)
    assert summary is not None and summary.datapoints_count == 2
    assert [r.id for r in store.logs.recent_logs(org_id=org_id)] == ["data_child", "data_parent"]


def test_duplicate_log_ids_are_refused(store: Store) -> None:
    org_id = store.orgs.get_or_create_org("acme")
    store.insert_logs([record(store, org_id, "data_once")])
    with pytest.raises(sa.exc.IntegrityError):
        store.insert_logs([record(store, org_id, "data_once")])


def test_provider_keys_are_replaced(store: Store) -> None:
    org_id = store.orgs.get_or_create_org("acme")
    store.orgs.set_provider_key(org_id, "openai_azure", b"first", "https://a.openai.azure.com")
    store.orgs.set_provider_key(org_id, "openai_azure", b"second")
    assert store.orgs.provider_key(org_id, "openai_azure") == SavedProviderKey(b"second", None)
    store.orgs.set_provider_key(org_id, "openai_azure", b"third", "https://b.openai.azure.com")
    saved = store.orgs.provider_key(org_id, "openai_azure")
    assert saved == SavedProviderKey(b"third", "https://b.openai.azure.com")
    assert store.orgs.provider_key(org_id, "groq") is None


def insert_as_then(store: Store, log: LogRecord) -> None:
    """Insert ``log`` with only the columns the database's current schema has (those that only
    POST /v4/logs sets, such as ``updated_at``, are not LogRecord fields: left null)."""
    logs_then = sa.Table("logs", sa.MetaData(), autoload_with=store.engine)
    with store.engine.begin() as connection:
        connection.execute(
            logs_then.insert(), [{c.name: getattr(log, c.name, None) for c in logs_then.columns}]
        )


def test_migrating_a_populated_database_keeps_its_data(database_url: str) -> None:
    store = Store(database_url)
    upgrade(store.engine, "0001_initial")
    org_id = store.orgs.get_or_create_org("acme")
    insert_as_then(store, record(store, org_id, "data_old", output="kept"))
    # Then a log as 0003 knew it, so that 0005 (the cache token columns) meets one too.
    upgrade(store.engine, "0003_deployments")
    insert_as_then(store, record(store, org_id, "data_0003", output="also kept", prompt_tokens=9))
    store.upgrade()
    for log_id, output in (("data_old", "kept"), ("data_0003", "also kept")):
        row = store.logs.log(org_id, log_id)
        assert row is not None and row.output == output
        # logs from before 0005 did not say: null, never an invented zero
        assert row.cache_read_tokens is None and row.cache_write_tokens is None
    store.insert_logs(
        [record(store, org_id, "data_new", cache_read_tokens=3, cache_write_tokens=4)]
    )
    new = store.logs.log(org_id, "data_new")
    assert new is not None and (new.cache_read_tokens, new.cache_write_tokens) == (3, 4)
    with store.engine.connect() as connection:
        assert (
            compare_metadata(
                MigrationContext.configure(
                    connection, opts={"include_object": include_in_comparison}
                ),
                metadata,
            )
            == []
        )
    store.close()
