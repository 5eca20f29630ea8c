"""The local journal: where acknowledged log records wait while the database is unreachable.

When a commit fails because the database cannot be reached, the log writer appends the batch
here — one JSON line per record, fsync'd — and only then releases the callers: their 200 is
backed by this file instead of the database. The writer replays the journal into the database
when it is reachable again (also after a restart), inserting with "skip ids that already exist",
so a record is stored exactly once even if a replay is interrupted and repeated.

Each process writes its own file (``journal-<host>-<pid>.jsonl`` in the data directory); a
starting process adopts the files of processes that are no longer running. A host that is lost
for good loses its unreplayed journal (docs/operations.md).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import orjson

from chatgate.domain import LogRecord

_FIELDS = tuple(f.name for f in dataclasses.fields(LogRecord))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._host = socket.gethostname()
        self.path = directory / f"journal-{self._host}-{os.getpid()}.jsonl"

    def append(self, records: Iterable[LogRecord]) -> None:
        lines = b"".join(
            orjson.dumps({name: getattr(r, name) for name in _FIELDS}) + b"\n" for r in records
        )
        self._directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)

    def adopt_orphans(self) -> None:
        """Take over the journals of this host's processes that are gone (crash, restart)."""
        prefix = f"journal-{self._host}-"
        for path in self._directory.glob(f"{prefix}*.jsonl"):
            pid_text = path.name[len(prefix) : -len(".jsonl")]
            if path == self.path or not pid_text.isdigit() or _alive(int(pid_text)):
                continue
            orphan = path.with_name(f"{path.name}.adopted-{os.getpid()}")
            try:
                path.rename(orphan)  # atomic: only one process adopts a file
            except FileNotFoundError:
                continue
            self.append(self._read(orphan))
            orphan.unlink()

    def pending(self) -> list[LogRecord]:
        return self._read(self.path)

    def pending_count(self) -> int:
        try:
            with self.path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            return 0

    def clear(self) -> None:
        """Forget the records once they are committed to the database."""
        self.path.unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> list[LogRecord]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                values = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn last line from a crash mid-append: its callers were never released
            records.append(LogRecord(**values))
        return records
