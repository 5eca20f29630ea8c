"""v4 Projects: CRUD, the configs of a project, and deployments to environments.

The project's *active config* is the one deployed to the organisation's default environment
(``production``). Every id is looked up with the caller's organisation: another organisation's
project, config or environment is a 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import API_KEY_SECURITY, OrgDep, StateDep, authenticate
from chatgate.api.errors import json_response
from chatgate.api.params import MAX_PAGE, MAX_PAGE_SIZE, NO_NUL
from chatgate.api.render import feedback_type_response
from chatgate.api.render_projects import (
    active_config_response,
    deployment_response,
    page_response,
    project_response,
)
from chatgate.api.routes.model_configs import resolver_of
from chatgate.api.schemas.projects import (
    CreateProjectRequest,
    EnvironmentProjectConfigRequest,
    ProjectSortBy,
    SortOrder,
    UpdateProjectRequest,
)
from chatgate.errors import BadRequest, NotFound
from chatgate.services.auth import Principal
from chatgate.state import AppState
from chatgate.store import projects_repo
from chatgate.store.logs_repo import LogsRepo
from chatgate.store.sql import Store

router = APIRouter(tags=["Projects"], dependencies=NO_NUL)


def _project_or_404(store: Store, org_id: str, project_id: str) -> dict[str, Any]:
    project = projects_repo.project(store, org_id, project_id)
    if project is None:
        raise NotFound(f"project '{project_id}' not found")
    return project


def _environment_or_404(
    store: Store, org_id: str, *, env_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    env = projects_repo.environment(store, org_id, env_id=env_id, name=name)
    if env is None:
        raise NotFound(f"environment '{env_id or name}' not found")
    return env


def _config_or_404(store: Store, org_id: str, config_id: str) -> dict[str, Any]:
    config = store.config(org_id, config_id)
    if config is None:
        raise NotFound(f"model config '{config_id}' not found")
    return config


def _feedback_types(store: Store, org_id: str, project_id: str) -> list[dict[str, Any]]:
    """The project's feedback types, as the feedback feature stores them (project already
    checked to be the organisation's)."""
    types = LogsRepo(store).feedback_types(project_id)
    return [feedback_type_response(row) for row in types.values()]


def _render_projects(
    store: Store, org_id: str, projects: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """ProjectResponses for several projects with one query per computed field."""
    ids = [p["id"] for p in projects]
    counts = projects_repo.data_counts(store, org_id, ids)
    active = projects_repo.active_config_ids(store, org_id, ids)
    out = []
    for project in projects:
        use = None
        if project["id"] in active:
            uses = projects_repo.config_uses(store, org_id, project["id"], [active[project["id"]]])
            use = uses[0] if uses else None
        out.append(
            project_response(
                project,
                data_count=counts[project["id"]],
                active=use,
                feedback_types=_feedback_types(store, org_id, project["id"]),
            )
        )
    return out


def _render_project(store: Store, org_id: str, project_id: str) -> dict[str, Any]:
    return _render_projects(store, org_id, [_project_or_404(store, org_id, project_id)])[0]


@router.get("/projects", summary="List", operation_id="Projects_list")
async def list_projects(
    principal: OrgDep,
    state: StateDep,
    page: Annotated[
        int, Query(ge=0, le=MAX_PAGE, description="1-based page (0 is read as 1).")
    ] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
    filter: Annotated[str | None, Query(description="Case-insensitive name filter.")] = None,
    user_filter: Annotated[str | None, Query(description="chatgate has no users.")] = None,
    sort_by: ProjectSortBy = "created_at",
    order: SortOrder = "desc",
) -> Response:
    page = max(page, 1)
    org_id = principal.org_id

    def work() -> dict[str, Any]:
        if user_filter:  # projects have no users here, so no project matches a user filter
            return page_response([], page=page, size=size, total=0)
        rows, total = projects_repo.list_projects(
            state.store,
            org_id,
            offset=(page - 1) * size,
            limit=size,
            name_filter=filter,
            sort_by=sort_by,
            order=order,
        )
        records = _render_projects(state.store, org_id, rows)
        return page_response(records, page=page, size=size, total=total)

    return json_response(await state.store.call(work))


@router.post(
    "/projects",
    summary="Create",
    operation_id="Projects_create",
    status_code=201,
    openapi_extra={**openapi_body(CreateProjectRequest), **API_KEY_SECURITY},
)
async def create_project(request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, CreateProjectRequest, state.settings.max_body_bytes)
    org_id = principal.org_id

    def work() -> dict[str, Any]:
        created = projects_repo.create_project(state.store, org_id, body.name)
        if created is None:
            raise BadRequest(f"a project named '{body.name}' already exists")
        return _render_project(state.store, org_id, created["id"])

    return json_response(await state.store.call(work), 201)


@router.get("/projects/{id}", summary="Get", operation_id="Projects_get")
async def get_project(id: str, principal: OrgDep, state: StateDep) -> Response:
    return json_response(await state.store.call(_render_project, state.store, principal.org_id, id))


@router.patch(
    "/projects/{id}",
    summary="Update",
    operation_id="Projects_update",
    openapi_extra={**openapi_body(UpdateProjectRequest), **API_KEY_SECURITY},
)
async def update_project(id: str, request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, UpdateProjectRequest, state.settings.max_body_bytes)
    org_id, store = principal.org_id, state.store

    def work() -> dict[str, Any]:
        _project_or_404(store, org_id, id)
        if body.active_config_id is not None:
            _config_or_404(store, org_id, body.active_config_id)
        if body.name is not None and not projects_repo.rename_project(store, org_id, id, body.name):
            raise BadRequest(f"a project named '{body.name}' already exists")
        if body.active_config_id is not None:
            env = projects_repo.default_environment(store, org_id)
            projects_repo.deploy(store, org_id, id, body.active_config_id, [env["id"]])
        return _render_project(store, org_id, id)

    rendered = await state.store.call(work)
    if body.name is not None:
        resolver_of(request).forget_project(org_id, id)  # the old name must not resolve to it
    return json_response(rendered)


@router.delete("/projects/{id}", summary="Delete", operation_id="Projects_delete", status_code=204)
async def delete_project(id: str, request: Request, principal: OrgDep, state: StateDep) -> Response:
    deleted = await state.store.call(
        projects_repo.delete_project, state.store, principal.org_id, id
    )
    if not deleted:
        raise NotFound(f"project '{id}' not found")
    resolver_of(request).forget_project(principal.org_id, id)
    return Response(status_code=204)


@router.get("/projects/{id}/configs", summary="List Configs", operation_id="Projects_listConfigs")
async def list_configs(
    id: str,
    principal: OrgDep,
    state: StateDep,
    evaluation_aggregates: bool | None = None,
) -> Response:
    org_id, store = principal.org_id, state.store

    def work() -> list[dict[str, Any]]:
        from chatgate.api.render_projects import project_config_response

        project = _project_or_404(store, org_id, id)
        uses = projects_repo.config_uses(store, org_id, id)
        return [project_config_response(project, use) for use in uses]

    return json_response(await state.store.call(work))


def _active(
    state: AppState, principal: Principal, project_id: str, environment: str | None
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    store, org_id = state.store, principal.org_id
    project = _project_or_404(store, org_id, project_id)
    env = _environment_or_404(store, org_id, name=environment)
    return project, env, projects_repo.deployed_config_id(store, org_id, project_id, env["id"])


@router.get(
    "/projects/{id}/active-config",
    summary="Get Active Config",
    operation_id="Projects_getActiveConfig",
)
async def get_active_config(
    id: str, principal: OrgDep, state: StateDep, environment: str | None = None
) -> Response:
    def work() -> dict[str, Any]:
        project, env, config_id = _active(state, principal, id, environment)
        uses = (
            projects_repo.config_uses(state.store, principal.org_id, id, [config_id])
            if config_id
            else []
        )
        if not uses:
            raise NotFound(
                f"project '{project['name']}' has no config deployed to environment '{env['name']}'"
            )
        return active_config_response(project, uses[0], env["id"])

    return json_response(await state.store.call(work))


@router.delete(
    "/projects/{id}/active-config",
    summary="Deactivate Config",
    operation_id="Projects_deactivateConfig",
)
async def deactivate_config(
    id: str, principal: OrgDep, state: StateDep, environment: str | None = None
) -> Response:
    def work() -> dict[str, Any]:
        project, env, config_id = _active(state, principal, id, environment)
        if config_id is None:
            raise NotFound(
                f"project '{project['name']}' has no config deployed to environment '{env['name']}'"
            )
        projects_repo.undeploy(state.store, principal.org_id, id, env["id"])
        return _render_project(state.store, principal.org_id, id)

    return json_response(await state.store.call(work))


def _deployments(store: Store, org_id: str, project: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        deployment_response(project, d)
        for d in projects_repo.deployments(store, org_id, project["id"])
    ]


@router.get(
    "/projects/{id}/deployed-configs",
    summary="List Deployed Configs",
    operation_id="Projects_listDeployedConfigs",
)
async def list_deployed_configs(id: str, principal: OrgDep, state: StateDep) -> Response:
    def work() -> list[dict[str, Any]]:
        project = _project_or_404(state.store, principal.org_id, id)
        return _deployments(state.store, principal.org_id, project)

    return json_response(await state.store.call(work))


@router.patch(
    "/projects/{project_id}/deploy-config",
    summary="Deploy Config",
    operation_id="Projects_deployConfig",
    openapi_extra={**openapi_body(EnvironmentProjectConfigRequest), **API_KEY_SECURITY},
)
async def deploy_config(project_id: str, request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, EnvironmentProjectConfigRequest, state.settings.max_body_bytes)
    store, org_id = state.store, principal.org_id

    def work() -> list[dict[str, Any]]:
        project = _project_or_404(store, org_id, project_id)
        _config_or_404(store, org_id, body.config_id)
        if body.environments:
            env_ids = [
                _environment_or_404(store, org_id, env_id=e.id)["id"] for e in body.environments
            ]
        else:
            env_ids = [projects_repo.default_environment(store, org_id)["id"]]
        projects_repo.deploy(store, org_id, project_id, body.config_id, env_ids)
        return _deployments(store, org_id, project)

    return json_response(await state.store.call(work))


@router.delete(
    "/projects/{project_id}/deployed-config/{environment_id}",
    summary="Delete Deployed Config",
    operation_id="Projects_deleteDeployedConfig",
)
async def delete_deployed_config(
    project_id: str, environment_id: str, principal: OrgDep, state: StateDep
) -> Response:
    store, org_id = state.store, principal.org_id

    def work() -> list[dict[str, Any]]:
        project = _project_or_404(store, org_id, project_id)
        env = _environment_or_404(store, org_id, env_id=environment_id)
        if not projects_repo.undeploy(store, org_id, project_id, env["id"]):
            raise NotFound(
                f"project '{project['name']}' has no config deployed to environment '{env['name']}'"
            )
        return _deployments(store, org_id, project)

    return json_response(await state.store.call(work))
