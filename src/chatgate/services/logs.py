"""Logs: list, read, record (``POST /logs``), update and delete, scoped to the organisation."""

from __future__ import annotations

from chatgate.services.resolve import Resolver
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter


class LogService:
    def __init__(self, store: Store, writer: LogWriter, resolver: Resolver) -> None:
        self._store = store
        self._writer = writer
        self._resolver = resolver
