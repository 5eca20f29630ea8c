"""Engine construction with the dialect specifics.

* SQLite: WAL, ``synchronous``, a busy timeout, foreign keys (pragmas on every connection).
* PostgreSQL in the server (``driver="async"``): a plain ``postgresql://`` (or ``postgres://``,
  ``postgresql+asyncpg://``) URL is served by asyncpg through SQLAlchemy's asyncio extension. The
  store's code stays synchronous: it runs on the event loop inside SQLAlchemy's greenlet bridge
  (``Store.call``), where each wait on the database suspends only the calling request.
* PostgreSQL anywhere else (``driver="sync"``: the CLI, migrations at set-up, tests, benchmarks)
  and whenever the URL names ``postgresql+psycopg://`` explicitly: psycopg 3, called from threads.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import orjson
import sqlalchemy as sa
from sqlalchemy.engine.url import URL, make_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Driver = Literal["sync", "async"]

#: Seconds to wait for a PostgreSQL connection: an unreachable database must fail fast, so that
#: the log writer journals locally instead of holding requests.
CONNECT_TIMEOUT = 5


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _postgres_driver(parsed: URL) -> str | None:
    """The driver a PostgreSQL URL names (``""`` for none); None when it is not PostgreSQL."""
    backend, _, driver = parsed.drivername.partition("+")
    return driver if backend in ("postgresql", "postgres") else None


def uses_asyncpg(url: str, driver: Driver) -> bool:
    """True when a store opened with ``driver`` on ``url`` runs on asyncpg."""
    return driver == "async" and _postgres_driver(make_url(url)) in ("", "asyncpg")


def create_async_engine(url: str) -> AsyncEngine:
    """asyncpg for a PostgreSQL URL written for libpq (``?host=/socket/dir``, ``sslmode``, ...).

    SQLAlchemy would hand the URL's query to ``asyncpg.connect`` as keyword arguments, which it
    does not take for libpq's names; asyncpg understands them in a DSN, so they travel as one.
    """
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

    parsed = make_url(url)
    query: dict[str, Any] = dict(parsed.query)
    timeout = float(str(query.pop("connect_timeout", CONNECT_TIMEOUT)))
    # The name PostgreSQL shows for these sessions (pg_stat_activity.application_name).
    server_settings = {"application_name": str(query.pop("application_name", "chatgate"))}
    connect_args: dict[str, Any] = {"timeout": timeout, "server_settings": server_settings}
    if query:
        connect_args["dsn"] = "postgresql://?" + urlencode(query, doseq=True)
    engine = sa_create_async_engine(
        parsed.set(drivername="postgresql+asyncpg", query={}),
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        # No overflow connections: on the event loop nothing caps concurrent store calls (in
        # threads the executor's 6 did), and an overflow connection is opened and closed per
        # checkout; 16 concurrent reads took 13 ms instead of 2 (bench/pg_driver_bench.py).
        # Past 20 concurrent calls a caller awaits a free connection instead.
        pool_size=20,
        max_overflow=0,
        connect_args=connect_args,
    )
    dbapi = engine.dialect.loaded_dbapi

    @sa.event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # asyncpg raises a failed connection as it comes (ConnectionRefusedError, TimeoutError,
        # "the database system is shutting down", ...), some of it unwrapped by SQLAlchemy. As
        # with psycopg, every failure to connect becomes an OperationalError: "unreachable".
        try:
            return dialect.connect(*cargs, **cparams)
        except (dbapi.OperationalError, dbapi.InterfaceError):
            raise
        except Exception as exc:
            raise dbapi.OperationalError(f"cannot connect to PostgreSQL: {exc!r}", exc) from exc

    return engine


def make_private(database: Path) -> None:
    """The SQLite database readable by its owner only (0600), like ``secret.key``.

    It holds every prompt and answer. A new file is created 0600 before SQLite opens it, and
    SQLite gives its ``-wal`` and ``-shm`` files the database file's permissions; files made
    readable by others (by an older chatgate, or a copy) are narrowed.
    """
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)


#: ``scheme://user:PASSWORD@`` and libpq's ``?password=...`` / ``&password=...``.
_URL_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^/@:]*:)[^?#]*(@)")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def display_url(url: str) -> str:
    """The database URL as it may be printed or logged: any password is masked, nothing else
    changes."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\2", url))


def create_engine(
    url: str, *, sqlite_synchronous: str = "NORMAL", background_checkpoint: bool = False
) -> sa.Engine:
    parsed = make_url(url)
    postgres_driver = _postgres_driver(parsed)
    if postgres_driver is not None:
        # A synchronous engine: psycopg 3 unless the URL names another synchronous driver.
        if postgres_driver in ("", "asyncpg"):
            postgres_driver = "psycopg"
        parsed = parsed.set(drivername=f"postgresql+{postgres_driver}")
        return sa.create_engine(
            parsed,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            connect_args={"connect_timeout": CONNECT_TIMEOUT},
        )
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
            "use sqlite:///path or postgresql://user:password@host/database"
        )
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        make_private(path)
        parsed = parsed.set(database=str(path))
    engine = sa.create_engine(
        parsed,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=8,
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. NORMAL: a commit survives the process being
        # killed; FULL (CHATGATE_SQLITE_SYNCHRONOUS) also survives power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        if background_checkpoint:
            # The server checkpoints the WAL from its own thread (Store.checkpoint) so that no
            # request's commit ever pays for copying the WAL into the database.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return engine
