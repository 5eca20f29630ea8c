"""The log writer against a real SQLite file: every record committed, the WAL kept bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import sqlalchemy as sa

from chatgate.domain import LogRecord
from chatgate.store import schema as t
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter


class SmallWalWriter(LogWriter):
    # A small threshold so that the test sees many WAL restarts in a few thousand records.
    WAL_INLINE_FRAMES = 128  # 512 KiB


def _records(store: Store, count: int) -> list[LogRecord]:
    org_id = store.orgs.get_or_create_org("acme")
    project_id = store.projects.get_or_create_project(org_id, "p")
    config_id = store.projects.get_or_create_config(org_id, "c" * 64, {"model": "m"}, None, None)
    return [
        LogRecord(
            id=f"data_{i:08d}",
            org_id=org_id,
            project_id=project_id,
            config_id=config_id,
            provider="openai",
            model="gpt-4o",
            output="x" * 2_000,
            created_at=time.time(),
        )
        for i in range(count)
    ]


def test_sequential_writes_keep_the_wal_bounded_and_lose_nothing(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'logs.db'}", background_checkpoint=True)
    store.upgrade()
    records = _records(store, 3_000)
    largest_wal = 0

    async def main() -> None:
        nonlocal largest_wal
        writer = SmallWalWriter(store)
        writer.start()
        for one in records:  # one at a time, as at concurrency 1: no idle gap to checkpoint in
            await writer.write([one])
            largest_wal = max(largest_wal, os.stat(tmp_path / "logs.db-wal").st_size)
        await writer.close()

    asyncio.run(main())
    with store.engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(t.logs)) == len(records)
    store.close()
    # Without restarts the WAL grows by every commit (tens of MB here); with them it stays near
    # the threshold plus the commits between two checkpoints (the frame count the writer acts
    # on is the one the previous checkpoint saw): about 2.4 MiB here.
    assert largest_wal < 8 * 512 * 1024, largest_wal


def test_a_refused_record_fails_only_its_own_caller(tmp_path: Path) -> None:
    """Callers whose records share a batch with one the database refuses (its project is gone)
    still get their records committed; only that caller learns of the failure."""
    store = Store(f"sqlite:///{tmp_path / 'logs.db'}")
    store.upgrade()
    good = _records(store, 20)
    orphan = dataclasses.replace(good[0], id="data_orphan", project_id="pr_deleted")
    outcomes: list[BaseException | None] = []

    async def main() -> None:
        writer = LogWriter(store)
        writer.start()
        # Queued before the writer task first runs, so they form one batch.
        writes = [writer.write([one]) for one in good[:10]]
        writes.append(writer.write([orphan]))
        writes += [writer.write([one]) for one in good[10:]]
        outcomes.extend(await asyncio.gather(*writes, return_exceptions=True))
        await writer.close()

    asyncio.run(main())
    assert [isinstance(o, sa.exc.IntegrityError) for o in outcomes] == [False] * 10 + [True] + [
        False
    ] * 10
    with store.engine.connect() as c:
        stored = set(c.scalars(sa.select(t.logs.c.id)))
    assert stored == {r.id for r in good}
    store.close()
