"""v4 Model Configs: register a config in a project, read one, and the ``.prompt`` text format.

Registration shares the chat path's identity rule (fingerprint get-or-create through the
Resolver's cache): the same parameters give the same ``config_…`` id however they arrive.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from chatgate.api import prompt_file
from chatgate.api.body import nul_at, openapi_body, parse_body
from chatgate.api.deps import API_KEY_SECURITY, OrgDep, StateDep, authenticate
from chatgate.api.errors import json_response
from chatgate.api.params import NO_NUL
from chatgate.api.render_projects import config_response, project_config_response
from chatgate.api.schemas.chat import ModelConfigChatRequest, config_to_domain
from chatgate.api.schemas.common import LinkedToolRequest
from chatgate.api.schemas.model_configs import (
    Body_ModelConfigs_deserialize,
    ProjectModelConfigRequest,
    stored_config_request,
)
from chatgate.errors import InvalidRequest, NotFound, NotImplementedByServer
from chatgate.services.auth import Principal
from chatgate.services.resolve import Resolver
from chatgate.state import AppState
from chatgate.store import projects_repo

router = APIRouter(tags=["Model Configs"], dependencies=NO_NUL)


def resolver_of(request: Request) -> Resolver:
    state: AppState = request.app.state.chatgate
    return state.resolver


async def _config_id(
    request: Request, state: AppState, principal: Principal, config: ModelConfigChatRequest
) -> str:
    """Validate a wire config as the chat path would, then get-or-create its id."""
    linked = [t.id for t in config.tools or [] if isinstance(t, LinkedToolRequest)]
    if linked:
        raise NotFound(
            f"tool '{linked[0]}' not found: this server has no organisation tools; define the "
            "tool inline in tools"
        )
    state.chat.provider(config.provider)  # 422 for an unknown provider, as /v4/chat
    return await resolver_of(request).config(principal.org_id, config_to_domain(config))


async def _stored(state: AppState, principal: Principal, config_id: str) -> dict[str, Any]:
    row = await state.store.call(state.store.config, principal.org_id, config_id)
    if row is None:
        raise NotFound(f"model config '{config_id}' not found")
    return row


@router.post(
    "/model-configs",
    summary="Register",
    operation_id="ModelConfigs_register",
    description="Register a model config to a project (the same parameters give the same id).",
    openapi_extra={**openapi_body(ProjectModelConfigRequest), **API_KEY_SECURITY},
)
async def register(request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, ProjectModelConfigRequest, state.settings.max_body_bytes)
    if body.prompt_template is not None:
        raise NotImplementedByServer(
            "completion model configs (prompt_template) are not supported by chatgate; "
            "use chat_template"
        )
    if body.project is None and body.project_id is None:
        raise InvalidRequest.at(
            ("body", "project"),
            "either project or project_id must be provided",
            "value_error.missing",
        )
    org_id = principal.org_id
    project_id = await resolver_of(request).project(
        org_id, name=body.project, project_id=body.project_id
    )
    config = ModelConfigChatRequest.model_validate(
        body.model_dump(exclude={"project", "project_id", "prompt_template"}, exclude_unset=True)
    )
    config_id = await _config_id(request, state, principal, config)
    store = state.store
    await store.call(projects_repo.register_config, store, org_id, project_id, config_id)
    project = await store.call(projects_repo.project, store, org_id, project_id)
    uses = await store.call(projects_repo.config_uses, store, org_id, project_id, [config_id])
    if project is None or not uses:
        raise NotFound(f"project '{project_id}' not found")  # deleted meanwhile
    return json_response(project_config_response(project, uses[0]))


@router.get("/model-configs/{id}", summary="Get", operation_id="ModelConfigs_get")
async def get(id: str, principal: OrgDep, state: StateDep) -> Response:
    row = await _stored(state, principal, id)
    return json_response(config_response(row))


@router.post("/model-configs/{id}/export", summary="Export", operation_id="ModelConfigs_export")
async def export(id: str, principal: OrgDep, state: StateDep) -> Response:
    row = await _stored(state, principal, id)
    return json_response(prompt_file.serialize(stored_config_request(row)))


@router.post(
    "/model-configs/serialize",
    summary="Serialize",
    operation_id="ModelConfigs_serialize",
    description="Serialize a model config to the .prompt file format.",
    openapi_extra={**openapi_body(ModelConfigChatRequest), **API_KEY_SECURITY},
)
async def serialize(request: Request) -> Response:
    state, _principal = await authenticate(request)
    body = await parse_body(request, ModelConfigChatRequest, state.settings.max_body_bytes)
    return json_response(prompt_file.serialize(body))


@router.post(
    "/model-configs/deserialize",
    summary="Deserialize",
    operation_id="ModelConfigs_deserialize",
    description="Deserialize a .prompt file to a model config (registered in the organisation).",
    openapi_extra={**openapi_body(Body_ModelConfigs_deserialize), **API_KEY_SECURITY},
)
async def deserialize(request: Request) -> Response:
    state, principal = await authenticate(request)
    body = await parse_body(request, Body_ModelConfigs_deserialize, state.settings.max_body_bytes)
    config = prompt_file.deserialize(body.config)
    # YAML writes NUL as "\0", which the body's own check cannot see.
    if (where := nul_at(config.model_dump(by_alias=True))) is not None:
        raise InvalidRequest.at(
            ("body", "config", *where),
            "strings must not contain NUL characters (U+0000)",
            "string_nul",
        )
    config_id = await _config_id(request, state, principal, config)
    return json_response(config_response(await _stored(state, principal, config_id)))
