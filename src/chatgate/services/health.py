"""The server's health as ``/healthz`` reports it: are logs reaching the database?"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chatgate.store.writer import LogWriter


@dataclass(frozen=True, slots=True)
class Health:
    database_reachable: bool
    #: Log records waiting in the local journal for the database to come back.
    journal_pending: int

    @property
    def degraded(self) -> bool:
        return not self.database_reachable or self.journal_pending > 0


class HealthService:
    def __init__(self, writer: LogWriter) -> None:
        self._writer = writer

    async def check(self) -> Health:
        pending = await asyncio.to_thread(self._writer.journal_pending)
        return Health(database_reachable=not self._writer.outage, journal_pending=pending)
