"""The group-commit log writer.

Requests hand their records to :meth:`LogWriter.write`; one task takes everything that queued up
while the previous transaction ran and commits it in a single transaction: on SQLite on one
dedicated thread (SQLite allows one writer at a time anyway), on PostgreSQL with asyncpg on the
event loop itself (``Store.call``; the commit's round trips suspend only the writer task). Each
caller is released when its own records are committed, so under load many requests share the
cost of one fsync.

The queue is bounded: when the database cannot keep up, callers wait for room (backpressure)
instead of the process growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.util import await_only

from chatgate.domain import LogRecord
from chatgate.store.journal import Journal
from chatgate.store.sql import Store

log = logging.getLogger(__name__)

_Item = tuple[Sequence[LogRecord], asyncio.Future[None]]
_T = TypeVar("_T")


def _lowest_cpu_priority() -> None:
    """Run the calling thread at the lowest CPU priority (Linux: nice 19 for this thread only).

    Copying the WAL into the database is CPU work (page copies, system calls) that can wait; at
    normal priority it competes with the event loop for the core and delays the requests that
    happen to be in flight. A thread this low is preempted as soon as the loop has work.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Release a waiting caller: with its records committed, or with why they were not."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class LogWriter:
    #: Records committed between two checkpoints of SQLite's write-ahead log (see _run).
    CHECKPOINT_RECORDS = 30

    #: WAL frames (pages, 4 KiB by default) past which a checkpoint runs between two commits,
    #: so that the WAL restarts (see _checkpoint_wal).
    WAL_INLINE_FRAMES = 4_096
    #: ... and past which that checkpoint also waits for other processes' writers.
    WAL_RESTART_FRAMES = 16_384

    #: Seconds between attempts to replay the journal while the database is unreachable.
    REPLAY_SECONDS = 1.0

    def __init__(
        self,
        store: Store,
        *,
        queue_size: int = 10_000,
        max_batch: int = 1_000,
        journal: Journal | None = None,
    ) -> None:
        self._store = store
        self._journal = journal
        #: True while records go to the journal because the database is unreachable.
        self.outage = False
        self._last_replay = 0.0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=queue_size)
        self._max_batch = max_batch
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatgate-log-writer")
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._since_checkpoint = 0
        #: Routine checkpoints have their own thread so that their fsyncs never hold up a commit.
        self._checkpointer = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="chatgate-wal-checkpoint",
            initializer=_lowest_cpu_priority,
        )
        self._checkpoint: asyncio.Future[None] | None = None
        #: Frames in the WAL as the last checkpoint found them.
        self._wal_frames = 0

    def start(self) -> None:
        if self._journal is not None:
            self._journal.adopt_orphans()
            # Records journaled before a restart are replayed before anything new is committed.
            self.outage = self._journal.pending_count() > 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="log-writer")

    def journal_pending(self) -> int:
        return self._journal.pending_count() if self._journal is not None else 0

    async def write(self, records: Sequence[LogRecord]) -> None:
        """Return once ``records`` are committed; raise if the commit failed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((records, future))
        # shield: a caller that is cancelled (client gone) must not cancel the commit itself.
        await asyncio.shield(future)

    def write_in_background(self, records: Sequence[LogRecord]) -> None:
        """Queue records without waiting for the commit (``CHATGATE_LOG_COMMIT=fast``)."""
        task = asyncio.ensure_future(self.write(records))
        self._background.add(task)
        task.add_done_callback(self._finished_background)

    def _finished_background(self, task: asyncio.Future[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background log write failed", exc_info=task.exception())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.outage:
                try:
                    item = await asyncio.wait_for(self._queue.get(), self.REPLAY_SECONDS)
                except TimeoutError:
                    await self._on_writer(loop, self._try_replay)
                    continue
            else:
                item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            records = [r for recs, _ in batch for r in recs]
            try:
                await self._on_writer(loop, self._commit, records)
            except Exception as exc:
                if len(batch) == 1:
                    log.exception("log commit of %d records failed", len(records))
                    _settle(batch[0][1], exc)
                else:
                    # The database refused the batch (it was reachable: an outage is journaled,
                    # not raised), e.g. one log of a project just deleted by another process.
                    # One caller's bad record must not fail the others: one commit per caller.
                    log.warning(
                        "log commit of %d records failed (%s); retrying one caller at a time",
                        len(records),
                        exc,
                    )
                    await self._commit_one_by_one(loop, batch)
            else:
                for _, future in batch:
                    _settle(future, None)
            self._since_checkpoint += len(records)
            if self._store.is_sqlite and not self.outage and self._should_checkpoint():
                self._since_checkpoint = 0
                await self._checkpoint_wal(loop)
            if stop:
                return

    async def _commit_one_by_one(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        for records, future in batch:
            try:
                await self._on_writer(loop, self._commit, list(records))
            except Exception as exc:
                log.exception("log commit of %d records failed", len(records))
                _settle(future, exc)
            else:
                _settle(future, None)

    async def _on_writer(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., _T], *args: Any
    ) -> _T:
        """Run store work of the writer: on asyncpg on the loop, otherwise on the writer thread."""
        if self._store.is_async:
            return await self._store.run(fn, *args)
        return await loop.run_in_executor(self._thread, fn, *args)

    def _commit(self, records: list[LogRecord]) -> None:
        """Via _on_writer: commit to the database, or journal while it is unreachable."""
        if self.outage and not self._try_replay():
            self._journal_append(records)
            return
        try:
            self._store.insert_logs(records)
        except Exception as exc:
            if self._journal is None or not self._store.is_unreachable(exc):
                raise
            log.error(
                "database unreachable (%s); journaling log records to %s", exc, self._journal.path
            )
            self.outage = True
            self._last_replay = time.monotonic()
            self._journal_append(records)

    def _journal_append(self, records: list[LogRecord]) -> None:
        assert self._journal is not None
        self._file_work(self._journal.append, records)

    def _file_work(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Journal file work from writer code: on asyncpg that code runs on the event loop (in
        Store.call's greenlet), so fsyncs and reading a long journal wait in a thread instead;
        otherwise it already runs on the writer's thread."""
        if self._store.is_async:
            return await_only(asyncio.to_thread(fn, *args))
        return fn(*args)

    def _try_replay(self) -> bool:
        """Move the journal into the database if it is reachable again; True once done."""
        assert self._journal is not None
        now = time.monotonic()
        if now - self._last_replay < self.REPLAY_SECONDS:
            return False
        self._last_replay = now
        pending = self._file_work(self._journal.pending)
        try:
            self._store.insert_logs_skipping_existing(pending)
        except Exception as exc:
            if not self._store.is_unreachable(exc):
                log.exception("replaying %d journaled log records failed", len(pending))
            return False
        self._file_work(self._journal.clear)
        self.outage = False
        log.warning("database reachable again: replayed %d journaled log records", len(pending))
        return True

    async def _checkpoint_wal(self, loop: asyncio.AbstractEventLoop) -> None:
        """Copy SQLite's write-ahead log into the database, out of the commits' way.

        Usually on the checkpoint thread (at the lowest CPU priority), concurrently with the next
        commits: a PASSIVE checkpoint never blocks a commit, and a commit only appends to the
        WAL, so no request waits for the checkpoint (on the writer's own thread every one of
        them held up the next commit by about a millisecond and a half: the slowest 3 % of
        requests at concurrency 1). But the WAL only restarts from its beginning when a commit
        finds every frame already copied, which a checkpoint racing the commits rarely
        achieves; so once the WAL holds ``WAL_INLINE_FRAMES``, one checkpoint runs on the
        writer's thread, between two commits. The background ones have copied almost
        everything by then, so it is short, and it is one commit in thousands.
        """
        running = self._checkpoint is not None and not self._checkpoint.done()
        if self._wal_frames >= self.WAL_INLINE_FRAMES:
            if running:
                assert self._checkpoint is not None
                await self._checkpoint  # it holds SQLite's checkpoint lock: let it finish
            wait = self._wal_frames >= self.WAL_RESTART_FRAMES
            await loop.run_in_executor(self._thread, self._checkpoint_quietly, wait)
            self._wal_frames = 0  # restarts at the next commit
        elif not running:
            self._checkpoint = loop.run_in_executor(self._checkpointer, self._checkpoint_quietly)

    def _checkpoint_quietly(self, wait_for_writers: bool = False) -> None:
        try:
            self._wal_frames = self._store.checkpoint(wait_for_writers=wait_for_writers)
        except Exception:
            log.exception("WAL checkpoint failed; will retry")

    def _should_checkpoint(self) -> bool:
        if self._since_checkpoint >= 10 * self.CHECKPOINT_RECORDS:
            return True  # sustained load: do not let the WAL grow further
        return self._since_checkpoint >= self.CHECKPOINT_RECORDS and self._queue.empty()

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        if self._checkpoint is not None:
            await self._checkpoint
        self._thread.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
