"""Projects: create, list, read, rename, delete, with their computed fields.

A project's *active config* is the one deployed to the organisation's default environment
(``production``). Every id is looked up with the caller's organisation: another organisation's
project is a 404 like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.domain.logs import FeedbackType
from chatgate.domain.projects import ConfigUse, ProjectRow, ProjectSortBy, SortOrder
from chatgate.errors import BadRequest, NotFound
from chatgate.services.resolve import Resolver
from chatgate.store.sql import Store


@dataclass(frozen=True, slots=True)
class ProjectView:
    """A project with its computed fields (the v4 ``ProjectResponse``)."""

    project: ProjectRow
    data_count: int
    #: The config deployed to the default environment, with its use in the project.
    active: ConfigUse | None
    #: The project's feedback types as the feedback feature stores them.
    feedback_types: list[FeedbackType]


@dataclass(frozen=True, slots=True)
class ProjectPage:
    projects: list[ProjectView]
    #: How many projects match the filter, on every page.
    total: int


@dataclass(frozen=True, slots=True)
class ProjectConfigs:
    """The configs registered to a project or used by its logs, oldest first."""

    project: ProjectRow
    uses: list[ConfigUse]


def project_or_404(store: Store, org_id: str, project_id: str) -> ProjectRow:
    project = store.projects.project(org_id, project_id)
    if project is None:
        raise NotFound(f"project '{project_id}' not found")
    return project


def project_views(store: Store, org_id: str, projects: list[ProjectRow]) -> list[ProjectView]:
    """Views of several projects with one query per computed field (synchronous: run inside a
    ``Store.call``, with whatever else the caller reads or writes)."""
    repo = store.projects
    ids = [p.id for p in projects]
    counts = repo.data_counts(org_id, ids)
    active = repo.active_config_ids(org_id, ids)
    views = []
    for project in projects:
        use = None
        if project.id in active:
            uses = repo.config_uses(org_id, project.id, [active[project.id]])
            use = uses[0] if uses else None
        views.append(
            ProjectView(
                project,
                data_count=counts[project.id],
                active=use,
                feedback_types=list(store.logs.feedback_types(project.id).values()),
            )
        )
    return views


def project_view(store: Store, org_id: str, project_id: str) -> ProjectView:
    """The view of one project of the organisation (404 when it has none of that id)."""
    return project_views(store, org_id, [project_or_404(store, org_id, project_id)])[0]


class ProjectService:
    def __init__(self, store: Store, resolver: Resolver) -> None:
        self._store = store
        self._resolver = resolver

    async def list(
        self,
        org_id: str,
        *,
        page: int,
        size: int,
        name_filter: str | None = None,
        user_filter: str | None = None,
        sort_by: ProjectSortBy = "created_at",
        order: SortOrder = "desc",
    ) -> ProjectPage:
        """One page (1-based) of the organisation's projects whose name contains
        ``name_filter`` (any case)."""
        if user_filter:  # projects have no users here, so no project matches a user filter
            return ProjectPage([], 0)
        store = self._store

        def work() -> ProjectPage:
            rows, total = store.projects.list_projects(
                org_id,
                offset=(page - 1) * size,
                limit=size,
                name_filter=name_filter,
                sort_by=sort_by,
                order=order,
            )
            return ProjectPage(project_views(store, org_id, rows), total)

        return await store.call(work)

    async def create(self, org_id: str, name: str) -> ProjectView:
        """A new project; a name the organisation already has is a 400."""
        store = self._store

        def work() -> ProjectView:
            created = store.projects.create_project(org_id, name)
            if created is None:
                raise BadRequest(f"a project named '{name}' already exists")
            return project_view(store, org_id, created.id)

        return await store.call(work)

    async def get(self, org_id: str, project_id: str) -> ProjectView:
        return await self._store.call(project_view, self._store, org_id, project_id)

    async def update(
        self,
        org_id: str,
        project_id: str,
        *,
        name: str | None = None,
        active_config_id: str | None = None,
    ) -> ProjectView:
        """Rename the project and/or deploy a config to the default environment (its active
        config). A name another project has is a 400; the old name stops resolving to it."""
        store = self._store

        def work() -> ProjectView:
            repo = store.projects
            project_or_404(store, org_id, project_id)
            if active_config_id is not None and repo.config(org_id, active_config_id) is None:
                raise NotFound(f"model config '{active_config_id}' not found")
            if name is not None and not repo.rename_project(org_id, project_id, name):
                raise BadRequest(f"a project named '{name}' already exists")
            if active_config_id is not None:
                env = repo.default_environment(org_id)
                repo.deploy(org_id, project_id, active_config_id, [env.id])
            return project_view(store, org_id, project_id)

        view = await store.call(work)
        if name is not None:
            self._resolver.forget_project(org_id, project_id)  # the old name must not resolve
        return view

    async def delete(self, org_id: str, project_id: str) -> None:
        """Delete the project with its logs, deployments and registrations (404 if unknown)."""
        if not await self._store.call(self._store.projects.delete_project, org_id, project_id):
            raise NotFound(f"project '{project_id}' not found")
        self._resolver.forget_project(org_id, project_id)

    async def configs(self, org_id: str, project_id: str) -> ProjectConfigs:
        store = self._store

        def work() -> ProjectConfigs:
            project = project_or_404(store, org_id, project_id)
            return ProjectConfigs(project, store.projects.config_uses(org_id, project_id))

        return await store.call(work)
