"""Sessions: create, list a project's, read one; visible only to their organisation."""

from __future__ import annotations

from chatgate.domain.logs import Page, SessionSummary
from chatgate.errors import NotFound
from chatgate.store.sql import Store


class SessionService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, org_id: str) -> str:
        """A new session (with no reference id); its id."""
        return await self._store.call(self._store.logs.create_session, org_id)

    async def list(
        self, org_id: str, project_id: str, *, offset: int, limit: int
    ) -> Page[SessionSummary]:
        """The sessions with a log in the project, newest first (404: not the caller's project)."""
        return await self._store.call(self._list, org_id, project_id, offset, limit)

    def _list(self, org_id: str, project_id: str, offset: int, limit: int) -> Page[SessionSummary]:
        if self._store.projects.project(org_id, project_id) is None:
            raise NotFound(f"project '{project_id}' not found")
        logs = self._store.logs
        found = logs.project_session_ids(org_id, project_id, offset=offset, limit=limit)
        summaries = [logs.session_summary(org_id, session_id) for session_id in found.rows]
        return Page([s for s in summaries if s is not None], found.total)

    async def get(self, org_id: str, session_id: str) -> SessionSummary:
        summary = await self._store.call(self._store.logs.session_summary, org_id, session_id)
        if summary is None:
            raise NotFound(f"session '{session_id}' not found")
        return summary
