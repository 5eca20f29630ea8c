"""psycopg 3 (synchronous, in threads: what the CLI uses, and the server before it moved to
asyncpg) against asyncpg (on the event loop, through SQLAlchemy's async engine: what the server
uses) for the store's two hot operations on PostgreSQL: committing a batch of log records and
reading one row by key. Wall time and this process's CPU time per operation, because the server
has one core: CPU spent in the driver is CPU not serving requests.

    .venv/bin/python -m bench.pg_driver_bench
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench.store_bench import database, make_record
from chatgate.store import schema as t
from chatgate.store.sql import Store

_COLUMNS = [f.name for f in dataclasses.fields(make_record("o", "p", "c", 0.0, 0))]


def _rows(org_id: str, project_id: str, config_id: str, count: int) -> list[dict[str, object]]:
    records = [make_record(org_id, project_id, config_id, time.time(), i) for i in range(count)]
    return [{name: getattr(r, name) for name in _COLUMNS} for r in records]


async def _timed(
    operation: Callable[[], Awaitable[None]], repeat: int, concurrency: int
) -> tuple[float, float]:
    """(median wall ms per round of ``concurrency`` concurrent operations, CPU ms per op)."""
    walls: list[float] = []
    cpu_before = time.process_time()
    for _ in range(repeat):
        started = time.perf_counter()
        await asyncio.gather(*(operation() for _ in range(concurrency)))
        walls.append((time.perf_counter() - started) * 1000)
    cpu = (time.process_time() - cpu_before) * 1000 / (repeat * concurrency)
    return statistics.median(walls), cpu


async def compare(url: str, repeat: int) -> list[tuple[str, str, float, float]]:
    store = Store(url)
    store.upgrade()
    org_id = store.orgs.get_or_create_org("bench")
    project_id = store.projects.get_or_create_project(org_id, "p")
    config_id = store.projects.get_or_create_config(
        org_id, "b" * 64, {"model": "gpt-4o"}, None, None
    )
    sync_engine = store.engine
    async_engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://"),
        # Big enough that 16 concurrent reads never open overflow connections (the psycopg side
        # runs in asyncio's default thread pool: at most 6 connections at once on 2 cores).
        pool_size=20,
        json_serializer=sync_engine.dialect._json_serializer,  # type: ignore[attr-defined]
    )
    # What the server runs: the synchronous store code on asyncpg through the greenlet bridge.
    server_store = Store(url, driver="async")
    bridged_engine = server_store.engine
    key = sa.select(t.projects).where(t.projects.c.id == project_id, t.projects.c.org_id == org_id)
    results: list[tuple[str, str, float, float]] = []

    for batch in (1, 64):

        def insert_sync(batch: int = batch) -> None:
            with sync_engine.begin() as c:
                c.execute(t.logs.insert(), _rows(org_id, project_id, config_id, batch))

        async def insert_psycopg(batch: int = batch) -> None:
            await asyncio.to_thread(insert_sync, batch)

        async def insert_asyncpg(batch: int = batch) -> None:
            async with async_engine.begin() as c:
                await c.execute(t.logs.insert(), _rows(org_id, project_id, config_id, batch))

        def insert_bridged_sync(batch: int = batch) -> None:
            with bridged_engine.begin() as c:
                c.execute(t.logs.insert(), _rows(org_id, project_id, config_id, batch))

        async def insert_bridged(batch: int = batch) -> None:
            await server_store.call(insert_bridged_sync, batch)

        for name, op in (
            ("psycopg 3, thread", insert_psycopg),
            ("asyncpg", insert_asyncpg),
            ("asyncpg, Store.call (server)", insert_bridged),
        ):
            await _timed(op, 20, 1)  # warm the pool and the statement caches
            wall, cpu = await _timed(op, repeat, 1)
            results.append((f"commit {batch} log(s)", name, wall, cpu))

    def read_sync() -> None:
        with sync_engine.connect() as c:
            c.execute(key).one()

    async def read_psycopg() -> None:
        await asyncio.to_thread(read_sync)

    async def read_asyncpg() -> None:
        async with async_engine.connect() as c:
            (await c.execute(key)).one()

    def read_bridged_sync() -> None:
        with bridged_engine.connect() as c:
            c.execute(key).one()

    async def read_bridged() -> None:
        await server_store.call(read_bridged_sync)

    for concurrency in (1, 16):
        for name, op in (
            ("psycopg 3, thread", read_psycopg),
            ("asyncpg", read_asyncpg),
            ("asyncpg, Store.call (server)", read_bridged),
        ):
            await _timed(op, 20, concurrency)
            wall, cpu = await _timed(op, repeat, concurrency)
            results.append((f"read 1 row by key, {concurrency} at once", name, wall, cpu))
    await async_engine.dispose()
    await server_store.aclose()
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    with database("postgres") as url:
        results = asyncio.run(compare(url, args.repeat))
    print("| operation | driver | wall ms p50 (per round) | client CPU ms per op |")
    print("|---|---|---:|---:|")
    for operation, driver, wall, cpu in results:
        print(f"| {operation} | {driver} | {wall:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
