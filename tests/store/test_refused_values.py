"""Store.refuses_value: a value PostgreSQL (or its driver) will not take is told apart from an
outage, on asyncpg (the server) and psycopg (the CLI). The API maps it to a 400 (api/errors.py),
the backstop behind the edge checks of api/schemas/common.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from chatgate.errors import DatabaseUnreachable, ValueRefused
from chatgate.store.sql import Store, as_chatgate_error


def _statements(store: Store, org_id: str) -> list[Callable[[], Any]]:
    def nul_in_text() -> Any:
        return store.projects.get_or_create_project(org_id, "a\x00b")

    def beyond_an_integer() -> Any:
        with store.engine.connect() as connection:
            return connection.execute(sa.text("SELECT CAST(:v AS integer)"), {"v": 2**40})

    return [nul_in_text, beyond_an_integer]


def test_refused_values_on_asyncpg_and_psycopg(postgres_url: str) -> None:
    async def on_asyncpg() -> None:
        store = Store(postgres_url, driver="async")
        await store.call(store.upgrade)
        org_id = await store.call(store.orgs.get_or_create_org, "acme")
        for statement in _statements(store, org_id):
            with pytest.raises(sa.exc.DBAPIError) as refused:
                await store.run(statement)
            assert Store.refuses_value(refused.value), repr(refused.value)
            assert not Store.is_unreachable(refused.value), repr(refused.value)
            # What the services see: the error tree's own 400, not the driver's exception.
            with pytest.raises(ValueRefused):
                await store.call(statement)
        await store.aclose()

    asyncio.run(on_asyncpg())
    store = Store(postgres_url)
    org_id = store.orgs.get_or_create_org("acme")
    for statement in _statements(store, org_id):
        with pytest.raises(sa.exc.DBAPIError) as refused:
            statement()
        assert Store.refuses_value(refused.value), repr(refused.value)
        assert not Store.is_unreachable(refused.value), repr(refused.value)
    store.close()


def test_an_unreachable_database_is_no_refused_value() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(sa.exc.DBAPIError) as down:
        store.orgs.count_orgs()
    assert Store.is_unreachable(down.value)
    assert not Store.refuses_value(down.value)
    assert isinstance(as_chatgate_error(down.value), DatabaseUnreachable)
    store.close()
