"""The server's store on PostgreSQL: asyncpg under the synchronous store code, via the greenlet
bridge (``Store.call``), and failures to reach the database classified as psycopg's are."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.url import make_url

from chatgate.domain import LogRecord
from chatgate.errors import DatabaseUnreachable
from chatgate.store.engine import uses_asyncpg
from chatgate.store.journal import Journal
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter


def test_urls_choose_the_driver() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+asyncpg://u@h/db"):
        assert uses_asyncpg(url, "async")
        assert not uses_asyncpg(url, "sync")
        assert Store(url).engine.dialect.driver == "psycopg"  # CLI, set-up, tests: synchronous
    # The escape hatch: an explicit psycopg URL keeps the server on psycopg in threads.
    assert not uses_asyncpg("postgresql+psycopg://u@h/db", "async")
    explicit = Store("postgresql+psycopg://u@h/db", driver="async")
    assert not explicit.is_async and explicit.engine.dialect.driver == "psycopg"
    assert not uses_asyncpg("sqlite:///x.db", "async")


def test_async_store_runs_the_sync_store_code_on_asyncpg(postgres_url: str) -> None:
    async def main() -> None:
        store = Store(postgres_url, driver="async")
        assert store.is_async and store.engine.dialect.driver == "asyncpg"
        await store.call(store.upgrade)
        org_id = await store.call(store.orgs.get_or_create_org, "acme")
        project_id = await store.call(store.projects.get_or_create_project, org_id, "p")
        assert await store.call(store.projects.project_id_by_name, org_id, "p") == project_id
        # Concurrent calls interleave on the loop, each on its own pooled connection.
        found = await asyncio.gather(
            *(store.call(store.projects.project, org_id, project_id) for _ in range(20))
        )
        assert {row.id for row in found if row} == {project_id}
        # The same code outside the bridge cannot reach asyncpg: nothing runs it in a thread.
        with pytest.raises(sa.exc.MissingGreenlet):
            store.orgs.count_orgs()
        await store.aclose()

    asyncio.run(main())
    store = Store(postgres_url)
    assert store.orgs.org_id_by_name("acme")
    store.close()


def test_libpq_parameters_in_the_url_reach_asyncpg(postgres_url: str) -> None:
    async def main() -> None:
        url = f"{postgres_url}&application_name=probe&connect_timeout=3&sslmode=disable"
        store = Store(url, driver="async")

        def settings() -> tuple[str | None, str | None]:
            with store.engine.connect() as c:
                return c.scalar(sa.text("SHOW application_name")), c.scalar(
                    sa.text("SELECT current_database()")
                )

        name, database = await store.call(settings)
        assert name == "probe" and database == make_url(postgres_url).database
        await store.aclose()

    asyncio.run(main())


def _record(i: int) -> LogRecord:
    return LogRecord(
        id=f"data_{i:08d}",
        org_id="org_x",
        project_id="pr_x",
        config_id="config_x",
        provider="openai",
        model="gpt-4o",
        created_at=time.time(),
    )


def test_unreachable_database_is_classified_and_journaled(tmp_path: Path) -> None:
    """asyncpg raises a refused connection raw (OSError); the store sees an OperationalError."""
    url = f"postgresql://postgres:@/postgres?host={tmp_path / 'no-such-socket-dir'}"

    async def main() -> None:
        store = Store(url, driver="async")
        with pytest.raises(sa.exc.OperationalError) as raised:
            await store.run(store.orgs.count_orgs)
        assert Store.is_unreachable(raised.value)
        with pytest.raises(DatabaseUnreachable):  # what the services see
            await store.call(store.orgs.count_orgs)
        journal = Journal(tmp_path / "data")
        writer = LogWriter(store, journal=journal)
        writer.start()
        await writer.write([_record(1), _record(2)])  # released: the journal holds them
        assert writer.outage and journal.pending_count() == 2
        await writer.close()
        await store.aclose()

    asyncio.run(main())


def test_a_bad_statement_is_not_an_outage(postgres_url: str) -> None:
    async def main() -> None:
        store = Store(postgres_url, driver="async")
        await store.call(store.upgrade)
        with pytest.raises(sa.exc.IntegrityError) as raised:  # no such organisation
            await store.run(store.orgs.add_api_key, "org_missing", "cg_x", b"h")
        assert not Store.is_unreachable(raised.value)
        await store.aclose()

    asyncio.run(main())
