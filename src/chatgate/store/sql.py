"""The store: every read and write of chatgate's data, over SQLAlchemy Core.

Methods are synchronous and short. The async server runs them through :meth:`Store.call`: on
PostgreSQL (asyncpg) on the event loop, inside SQLAlchemy's greenlet bridge; on SQLite (or an
explicit ``postgresql+psycopg://``) in a thread. Every lookup that takes an id also takes the
caller's ``org_id``: a row of another organisation is indistinguishable from a missing one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.util import greenlet_spawn

from chatgate.domain import LogRecord
from chatgate.errors import ChatgateError, DatabaseBusy, DatabaseUnreachable, ValueRefused
from chatgate.store import schema as t
from chatgate.store.engine import Driver, create_async_engine, create_engine, uses_asyncpg
from chatgate.store.logs_repo import LogsRepo
from chatgate.store.migrate import upgrade
from chatgate.store.orgs_repo import OrgsRepo
from chatgate.store.projects_repo import ProjectsRepo

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: SQLSTATEs of a PostgreSQL that is going away or not accepting connections (class 08:
#: connection exception; 57P01-57P03: admin/crash shutdown, cannot connect now).
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


log = logging.getLogger("chatgate")

_LOG_COLUMNS = [f.name for f in dataclasses.fields(LogRecord)]


def _as_dict(row: sa.Row[Any]) -> dict[str, Any]:
    # Column names can be str subclasses (quoted_name); plain str keys serialise everywhere.
    return {str(k): v for k, v in row._mapping.items()}


def as_chatgate_error(exc: BaseException) -> ChatgateError | None:
    """A database failure as the error the caller sees, or None for a bug (a bad statement).

    A refused value (NUL in text, a number out of range ...) is a 400 whose message does not
    quote the value (the driver's message does: it may be a key); an unreachable database or an
    exhausted connection pool is a 503.
    """
    if isinstance(exc, sa.exc.TimeoutError):
        # Every pooled connection stayed busy for the pool's whole timeout: overload, not a bug.
        log.error("no database connection free: %s", exc)
        return DatabaseBusy("the database is busy (no connection became free in time); retry later")
    if Store.refuses_value(exc):
        orig = getattr(exc, "orig", None)
        log.warning(
            "the database refused a value of a request (%s, SQLSTATE %s)",
            type(orig).__name__,
            getattr(orig, "sqlstate", None),
        )
        return ValueRefused(
            "the database cannot store a value of this request "
            "(text holding NUL characters, a number out of range ...)"
        )
    if Store.is_unreachable(exc):
        log.error("database unreachable: %s", exc)
        return DatabaseUnreachable(
            "the database is unreachable; calls that need only what this server has cached "
            "still work; retry later"
        )
    return None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Store:
    """``driver="sync"`` (the default): methods are called directly, from any thread.

    ``driver="async"`` (the server): methods are called through ``await store.call(...)`` on the
    event loop that opened the store, which is also the one that must ``await store.aclose()``.
    On PostgreSQL the engine is then SQLAlchemy's asyncio engine on asyncpg, and ``engine`` is its
    synchronous facade: a method called outside :meth:`call` raises ``MissingGreenlet``.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        background_checkpoint: bool = False,
        driver: Driver = "sync",
    ) -> None:
        self.url = url
        #: The asyncio engine when this store runs on asyncpg, else None.
        self.async_engine: AsyncEngine | None = None
        if uses_asyncpg(url, driver):
            self.async_engine = create_async_engine(url)
            self.engine = self.async_engine.sync_engine
        else:
            self.engine = create_engine(
                url,
                sqlite_synchronous=sqlite_synchronous,
                background_checkpoint=background_checkpoint,
            )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # The repositories, one per topic; each is synchronous like the store's own methods.
        self.orgs = OrgsRepo(self)
        self.projects = ProjectsRepo(self)
        self.logs = LogsRepo(self)

    @property
    def is_async(self) -> bool:
        """True when store work runs on the event loop (asyncpg) rather than in threads."""
        return self.async_engine is not None

    async def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn(*args, **kwargs)``, synchronous store work, without blocking the event loop,
        with the database's failures raised as chatgate errors (:func:`as_chatgate_error`).

        On asyncpg it runs on the loop in a greenlet (``greenlet_spawn``, what SQLAlchemy's
        ``AsyncConnection.run_sync`` uses): every database round trip suspends it and lets the
        loop serve others; no thread, no thread hand-off. Otherwise in a thread.
        """
        try:
            return await self.run(fn, *args, **kwargs)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            translated = as_chatgate_error(exc)
            if translated is None:
                raise
            raise translated from exc

    async def run(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """:meth:`call` without the translation: for the store's own workers (the log writer),
        which tell an unreachable database from a refused statement themselves."""
        if self.async_engine is not None:
            return await greenlet_spawn(functools.partial(fn, *args, **kwargs))
        return await asyncio.to_thread(fn, *args, **kwargs)

    def upgrade(self) -> None:
        upgrade(self.engine)

    def close(self) -> None:
        """Close a synchronous store's connections (an async one: :meth:`aclose`)."""
        if self.async_engine is not None:
            raise RuntimeError("a store opened with driver='async' is closed with aclose()")
        self.engine.dispose()

    async def aclose(self) -> None:
        """Close the connections, on the event loop that used them."""
        if self.async_engine is not None:
            await self.async_engine.dispose()
        else:
            self.engine.dispose()

    def checkpoint(self, *, wait_for_writers: bool = False) -> int:
        """Copy SQLite's WAL into the database; return how many frames (pages) the WAL holds.

        PASSIVE by default: it never waits for anyone and copies what it can. The WAL restarts
        from its beginning at the first commit after every frame was copied. With
        ``wait_for_writers`` (RESTART) it waits for other connections' writes (other server
        processes) so that the restart surely happens. The file keeps its size for reuse; the
        returned count is what it holds now.
        """
        if not self.is_sqlite:
            return 0
        mode = "RESTART" if wait_for_writers else "PASSIVE"
        with self.engine.connect() as c:
            row = c.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})").first()
        return int(row[1]) if row is not None and row[1] is not None else 0

    # --- projects, sessions, configs: in ProjectsRepo (store.projects) ----------------------

    # --- log inserts (the writer's; everything else about logs: store.logs) -------------------

    def insert_logs(self, records: Iterable[LogRecord]) -> None:
        with self.engine.begin() as c:
            self.insert_logs_in(c, records)

    @staticmethod
    def insert_logs_in(connection: sa.Connection, records: Iterable[LogRecord]) -> None:
        """Insert log records inside the caller's transaction."""
        rows = [{name: getattr(r, name) for name in _LOG_COLUMNS} for r in records]
        if rows:
            connection.execute(t.logs.insert(), rows)

    def insert_logs_skipping_existing(self, records: Iterable[LogRecord]) -> None:
        """Insert, leaving alone any id already stored: replaying a journal twice is harmless."""
        rows = [{name: getattr(r, name) for name in _LOG_COLUMNS} for r in records]
        if not rows:
            return
        statement: sa.Insert
        if self.is_sqlite:
            # Imported here: only a journal replay needs them, and a server that never replays
            # does not carry the other backend's dialect.
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(t.logs).on_conflict_do_nothing(index_elements=["id"])
        else:
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            statement = postgresql_insert(t.logs).on_conflict_do_nothing(index_elements=["id"])
        with self.engine.begin() as c:
            c.execute(statement, rows)

    @staticmethod
    def is_unreachable(exc: BaseException) -> bool:
        """True when ``exc`` means the database could not be reached (not a bad statement).

        psycopg reports every such failure as an OperationalError. asyncpg's are made so at
        connect (engine.py); a connection lost mid-statement is an InterfaceError or is marked
        ``connection_invalidated``; a server shutting down sends SQLSTATE 57P01 (class 57P/08).
        """
        if isinstance(exc, (DatabaseUnreachable, sa.exc.OperationalError, sa.exc.InterfaceError)):
            return True
        if not isinstance(exc, sa.exc.DBAPIError):
            return False
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return isinstance(sqlstate, str) and sqlstate.startswith(_UNREACHABLE_SQLSTATES)

    @staticmethod
    def refuses_value(exc: BaseException) -> bool:
        """True when the database refused a value of the statement rather than the statement:
        SQLSTATE class 22 ("data exception": NUL in text, a number beyond its column ...), a
        DBAPI DataError, or a value the driver would not encode (asyncpg raises a ValueError).

        The API validates what it stores first (api/schemas/common.py); this is the backstop
        that keeps anything it missed a 4xx rather than a 500.
        """
        if isinstance(exc, sa.exc.DataError):
            return True
        if not isinstance(exc, sa.exc.DBAPIError) or exc.connection_invalidated:
            return False
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return True
        return isinstance(getattr(exc.orig, "__cause__", None), ValueError)
