"""v4 Model Configs: register a config in a project, read one, and the ``.prompt`` text format
(services/configs.py holds the rules; the ``.prompt`` format is parsed and written here, at the
edge)."""

from __future__ import annotations

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
from chatgate.errors import InvalidRequest, NotImplementedByServer

router = APIRouter(tags=["Model Configs"], dependencies=NO_NUL)


def _linked_tool_ids(config: ModelConfigChatRequest) -> tuple[str, ...]:
    """Organisation tools the config links to by id (the domain config holds inline ones)."""
    return tuple(t.id for t in config.tools or [] if isinstance(t, LinkedToolRequest))


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
        # The domain config cannot hold one: refused while the request is still its own format.
        raise NotImplementedByServer(
            "completion model configs (prompt_template) are not supported by chatgate; "
            "use chat_template"
        )
    config = ModelConfigChatRequest.model_validate(
        body.model_dump(exclude={"project", "project_id", "prompt_template"}, exclude_unset=True)
    )
    registered = await state.configs.register(
        principal.org_id,
        config_to_domain(config),
        project=body.project,
        project_id=body.project_id,
        linked_tool_ids=_linked_tool_ids(config),
    )
    return json_response(project_config_response(registered.project, registered.use))


@router.get("/model-configs/{id}", summary="Get", operation_id="ModelConfigs_get")
async def get(id: str, principal: OrgDep, state: StateDep) -> Response:
    return json_response(config_response(await state.configs.get(principal.org_id, id)))


@router.post("/model-configs/{id}/export", summary="Export", operation_id="ModelConfigs_export")
async def export(id: str, principal: OrgDep, state: StateDep) -> Response:
    row = await state.configs.get(principal.org_id, id)
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
    row = await state.configs.add(
        principal.org_id, config_to_domain(config), linked_tool_ids=_linked_tool_ids(config)
    )
    return json_response(config_response(row))
