"""v4 Projects: CRUD, the configs of a project, and deployments to environments
(services/projects.py and services/configs.py hold the rules)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import API_KEY_SECURITY, OrgDep, StateDep, authenticate
from chatgate.api.errors import json_response
from chatgate.api.params import MAX_PAGE, MAX_PAGE_SIZE, NO_NUL
from chatgate.api.render_projects import (
    active_config_response,
    deployment_response,
    page_response,
    project_config_response,
    project_response,
)
from chatgate.api.schemas.projects import (
    CreateProjectRequest,
    EnvironmentProjectConfigRequest,
    ProjectSortBy,
    SortOrder,
    UpdateProjectRequest,
)
from chatgate.services.configs import ProjectDeployments

router = APIRouter(tags=["Projects"], dependencies=NO_NUL)


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
    found = await state.projects.list(
        principal.org_id,
        page=page,
        size=size,
        name_filter=filter,
        user_filter=user_filter,
        sort_by=sort_by,
        order=order,
    )
    records = [project_response(view) for view in found.projects]
    return json_response(page_response(records, page=page, size=size, total=found.total))


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
    view = await state.projects.create(principal.org_id, body.name)
    return json_response(project_response(view), 201)


@router.get("/projects/{id}", summary="Get", operation_id="Projects_get")
async def get_project(id: str, principal: OrgDep, state: StateDep) -> Response:
    return json_response(project_response(await state.projects.get(principal.org_id, id)))


@router.patch(
    "/projects/{id}",
    summary="Update",
    operation_id="Projects_update",
    openapi_extra={**openapi_body(UpdateProjectRequest), **API_KEY_SECURITY},
)
async def update_project(id: str, request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, UpdateProjectRequest, state.settings.max_body_bytes)
    view = await state.projects.update(
        principal.org_id, id, name=body.name, active_config_id=body.active_config_id
    )
    return json_response(project_response(view))


@router.delete("/projects/{id}", summary="Delete", operation_id="Projects_delete", status_code=204)
async def delete_project(id: str, principal: OrgDep, state: StateDep) -> Response:
    await state.projects.delete(principal.org_id, id)
    return Response(status_code=204)


@router.get("/projects/{id}/configs", summary="List Configs", operation_id="Projects_listConfigs")
async def list_configs(
    id: str,
    principal: OrgDep,
    state: StateDep,
    evaluation_aggregates: bool | None = None,
) -> Response:
    found = await state.projects.configs(principal.org_id, id)
    return json_response([project_config_response(found.project, use) for use in found.uses])


@router.get(
    "/projects/{id}/active-config",
    summary="Get Active Config",
    operation_id="Projects_getActiveConfig",
)
async def get_active_config(
    id: str, principal: OrgDep, state: StateDep, environment: str | None = None
) -> Response:
    active = await state.configs.active(principal.org_id, id, environment)
    return json_response(active_config_response(active))


@router.delete(
    "/projects/{id}/active-config",
    summary="Deactivate Config",
    operation_id="Projects_deactivateConfig",
)
async def deactivate_config(
    id: str, principal: OrgDep, state: StateDep, environment: str | None = None
) -> Response:
    view = await state.configs.deactivate(principal.org_id, id, environment)
    return json_response(project_response(view))


def _deployments(found: ProjectDeployments) -> Response:
    return json_response([deployment_response(found.project, d) for d in found.deployments])


@router.get(
    "/projects/{id}/deployed-configs",
    summary="List Deployed Configs",
    operation_id="Projects_listDeployedConfigs",
)
async def list_deployed_configs(id: str, principal: OrgDep, state: StateDep) -> Response:
    return _deployments(await state.configs.deployments(principal.org_id, id))


@router.patch(
    "/projects/{project_id}/deploy-config",
    summary="Deploy Config",
    operation_id="Projects_deployConfig",
    openapi_extra={**openapi_body(EnvironmentProjectConfigRequest), **API_KEY_SECURITY},
)
async def deploy_config(project_id: str, request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, EnvironmentProjectConfigRequest, state.settings.max_body_bytes)
    environment_ids = [e.id for e in body.environments or []]
    return _deployments(
        await state.configs.deploy(principal.org_id, project_id, body.config_id, environment_ids)
    )


@router.delete(
    "/projects/{project_id}/deployed-config/{environment_id}",
    summary="Delete Deployed Config",
    operation_id="Projects_deleteDeployedConfig",
)
async def delete_deployed_config(
    project_id: str, environment_id: str, principal: OrgDep, state: StateDep
) -> Response:
    return _deployments(await state.configs.undeploy(principal.org_id, project_id, environment_id))
