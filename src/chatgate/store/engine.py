"""Engine construction with the dialect specifics.

* SQLite: WAL, ``synchronous``, a busy timeout, foreign keys (pragmas on every connection).
* PostgreSQL: a plain ``postgresql://`` URL is served by psycopg 3. Store calls are short and run
  in threads (as for SQLite), so the synchronous driver is the one that fits; its connection pool
  is sized for the server's thread use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine.url import make_url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(
    url: str, *, sqlite_synchronous: str = "NORMAL", background_checkpoint: bool = False
) -> sa.Engine:
    parsed = make_url(url)
    if parsed.drivername.split("+")[0] in ("postgresql", "postgres"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            # An unreachable database must fail fast: the log writer then journals locally.
            connect_args={"connect_timeout": 5},
        )
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
            "use sqlite:///path or postgresql://user:password@host/database"
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(Path(parsed.database).expanduser()))
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
