"""Resolving the names and ids of a request to rows of the caller's organisation.

Projects, sessions and model configs rarely change and are never deleted by the chat path, so
positive answers are cached per process: a warm request makes no database round trip for them.

Projects can be renamed or deleted through the API, by any server process; the one that does it
forgets them at once, the others' cached answers about projects expire after
``project_cache_seconds`` (and a log that could not be stored because its project is gone makes
this process forget that project at once: see :meth:`Resolver.forget_projects_of`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chatgate.domain import LogRecord, ModelConfig
from chatgate.domain.logs import LogRef
from chatgate.errors import InvalidRequest, NotFound
from chatgate.store.sql import Store

_MAX_CACHED = 100_000


class _BoundedCache(dict[Any, Any]):
    """A dict that forgets everything when full: simple, and the working set refills quickly."""

    def put(self, key: Any, value: Any) -> None:
        if len(self) >= _MAX_CACHED:
            self.clear()
        self[key] = value


Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request says its log belongs: a project, a session and a parent, each by id or by
    name / reference id."""

    project: str | None = None
    project_id: str | None = None
    session_id: str | None = None
    session_reference_id: str | None = None
    parent_id: str | None = None
    parent_reference_id: str | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    """A :class:`Placement` resolved to ids of the caller's organisation."""

    project_id: str
    session_id: str | None
    parent_id: str | None


def _exclusive(where: Placement, first: str, second: str, loc: Loc) -> None:
    if getattr(where, first) is not None and getattr(where, second) is not None:
        raise InvalidRequest.at((*loc, second), f"specify at most one of {first} and {second}")


class Resolver:
    def __init__(self, store: Store, *, project_cache_seconds: float = 10.0) -> None:
        self._store = store
        self._repo = store.projects
        self._project_ttl = project_cache_seconds
        #: key -> (project id, monotonic time the answer expires)
        self._projects = _BoundedCache()
        self._sessions = _BoundedCache()
        self._configs = _BoundedCache()

    async def place(
        self, org_id: str, where: Placement, *, loc: Loc = ("body",), exclusive: bool = False
    ) -> Placed:
        """The project, session and parent a log goes to (the one resolution every door uses).

        A missing project or project_id is a 422 at ``loc``; a named project is created on
        first use. A child log joins its parent's session. ``exclusive`` (``POST /logs``) refuses
        an id and a reference id given together; chat takes the id.
        """
        if exclusive:
            _exclusive(where, "session_id", "session_reference_id", loc)
            _exclusive(where, "parent_id", "parent_reference_id", loc)
        if where.project is None and where.project_id is None:
            raise InvalidRequest.at(
                (*loc, "project"),
                "either project or project_id must be provided",
                "value_error.missing",
            )
        project_id = await self.project(org_id, name=where.project, project_id=where.project_id)
        session_id = await self.session(
            org_id, session_id=where.session_id, reference_id=where.session_reference_id
        )
        parent = await self.parent(
            org_id, parent_id=where.parent_id, reference_id=where.parent_reference_id
        )
        if parent is not None and parent.session_id is not None:
            if session_id is None:
                session_id = parent.session_id  # a child joins its parent's session
            elif session_id != parent.session_id:
                raise InvalidRequest.at(
                    (*loc, "parent_id"), "the parent log belongs to a different session"
                )
        return Placed(project_id, session_id, parent.id if parent else None)

    def _cached_project(self, key: tuple[str, str, str]) -> str | None:
        entry = self._projects.get(key)
        if entry is None or entry[1] < time.monotonic():
            return None
        return str(entry[0])

    def _cache_project(self, key: tuple[str, str, str], project_id: str) -> None:
        self._projects.put(key, (project_id, time.monotonic() + self._project_ttl))

    async def project(self, org_id: str, *, name: str | None, project_id: str | None) -> str:
        if project_id is not None:
            key = (org_id, "id", project_id)
            if self._cached_project(key) is None:
                if await self._store.call(self._repo.project, org_id, project_id) is None:
                    raise NotFound(f"project '{project_id}' not found")
                self._cache_project(key, project_id)
            return project_id
        if name is None:
            raise InvalidRequest.at(
                ("body", "project"),
                "either project or project_id must be provided",
                "value_error.missing",
            )
        key = (org_id, "name", name)
        found = self._cached_project(key)
        if found is None:
            found = await self._store.call(self._repo.get_or_create_project, org_id, name)
            self._cache_project(key, found)
        return found

    def forget_project(self, org_id: str, project_id: str) -> None:
        """Drop every cached answer that leads to the project (deleted or renamed).

        Only this process's cache: other server processes keep theirs until they expire.
        """
        stale = [
            key
            for key, (value, _expires) in self._projects.items()
            if key[0] == org_id and (value == project_id or key[2] == project_id)
        ]
        for key in stale:
            del self._projects[key]

    def forget_projects_of(self, records: Iterable[LogRecord]) -> None:
        """After records could not be stored: their project may have been deleted by another
        process, so the next request resolves it afresh instead of failing the same way."""
        for org_id, project_id in {(r.org_id, r.project_id) for r in records}:
            self.forget_project(org_id, project_id)

    async def session(
        self, org_id: str, *, session_id: str | None, reference_id: str | None
    ) -> str | None:
        if session_id is not None:
            key = (org_id, "id", session_id)
            if key not in self._sessions:
                if await self._store.call(self._repo.session, org_id, session_id) is None:
                    raise NotFound(f"session '{session_id}' not found")
                self._sessions.put(key, session_id)
            return session_id
        if reference_id is None:
            return None
        key = (org_id, "ref", reference_id)
        found = self._sessions.get(key)
        if found is None:
            found = await self._store.call(self._repo.get_or_create_session, org_id, reference_id)
            self._sessions.put(key, found)
        return str(found)

    async def parent(
        self, org_id: str, *, parent_id: str | None, reference_id: str | None
    ) -> LogRef | None:
        if parent_id is not None:
            ref = await self._store.call(self._store.logs.log_ref, org_id, log_id=parent_id)
            if ref is None:
                raise NotFound(f"parent log '{parent_id}' not found")
            return ref
        if reference_id is not None:
            ref = await self._store.call(
                self._store.logs.log_ref, org_id, reference_id=reference_id
            )
            if ref is None:
                raise NotFound(f"parent log with reference id '{reference_id}' not found")
            return ref
        return None

    async def config(self, org_id: str, config: ModelConfig) -> str:
        fingerprint = config.fingerprint()
        key = (org_id, fingerprint)
        found = self._configs.get(key)
        if found is None:
            found = await self._store.call(
                self._repo.get_or_create_config,
                org_id,
                fingerprint,
                config.identity(),
                config.name,
                config.description,
            )
            self._configs.put(key, found)
        return str(found)
