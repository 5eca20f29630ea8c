"""v4 Chats by reference: ``POST /chat-model-config`` (a registered config) and
``POST /chat-deployed`` (the config deployed to a project's environment).

Both turn the stored config into the same request model /v4/chat takes and answer through the
same code (api/routes/chat.py ``answer``), so logs, streaming and errors are identical.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import API_KEY_SECURITY, authenticate
from chatgate.api.routes.chat import _ERRORS, answer
from chatgate.api.schemas.chat import ChatResponse, to_input
from chatgate.api.schemas.model_configs import (
    ChatDeployedRequest,
    ChatModelConfigRequest,
    stored_config_request,
)
from chatgate.errors import InvalidRequest, NotFound
from chatgate.store import projects_repo

router = APIRouter(tags=["Chats"])


@router.post(
    "/chat-model-config",
    response_model=ChatResponse,
    responses=_ERRORS,
    summary="Chat Model Config",
    operation_id="Chats_createModelConfig",
    description="Get a chat response for a specific model configuration.",
    openapi_extra={**openapi_body(ChatModelConfigRequest), **API_KEY_SECURITY},
)
async def chat_model_config(http_request: Request) -> Response:
    state, principal = await authenticate(http_request)
    body = await parse_body(http_request, ChatModelConfigRequest, state.settings.max_body_bytes)
    org_id = principal.org_id
    row = await state.store.call(state.store.config, org_id, body.model_config_id)
    if row is None:
        raise NotFound(f"model config '{body.model_config_id}' not found")
    if body.project is None and body.project_id is None:
        # Not in the spec's required list: default to the project the config was registered to.
        home = await state.store.call(projects_repo.home_project, state.store, org_id, row["id"])
        if home is not None:
            body = body.model_copy(update={"project_id": home})
    return await answer(http_request, state, principal, to_input(body, stored_config_request(row)))


@router.post(
    "/chat-deployed",
    response_model=ChatResponse,
    responses=_ERRORS,
    summary="Chat Deployed",
    operation_id="Chats_createDeployed",
    description="Get a chat response using the project's active deployment.",
    openapi_extra={**openapi_body(ChatDeployedRequest), **API_KEY_SECURITY},
)
async def chat_deployed(http_request: Request) -> Response:
    state, principal = await authenticate(http_request)
    body = await parse_body(http_request, ChatDeployedRequest, state.settings.max_body_bytes)
    org_id = principal.org_id
    store = state.store
    if body.project_id is not None:
        project = await store.call(projects_repo.project, store, org_id, body.project_id)
        if project is None:
            raise NotFound(f"project '{body.project_id}' not found")
    elif body.project is not None:
        project = await store.call(projects_repo.project_by_name, store, org_id, body.project)
        if project is None:
            raise NotFound(f"project '{body.project}' not found, so nothing is deployed to it")
    else:
        raise InvalidRequest.at(
            ("body", "project"),
            "either project or project_id must be provided",
            "value_error.missing",
        )
    environment = await store.call(projects_repo.environment, store, org_id, name=body.environment)
    if environment is None:
        raise NotFound(f"environment '{body.environment}' not found")
    config_id = await store.call(
        projects_repo.deployed_config_id, store, org_id, project["id"], environment["id"]
    )
    row = None
    if config_id is not None:
        row = await store.call(store.config, org_id, config_id)
    if row is None:
        raise NotFound(
            f"project '{project['name']}' has no model config deployed to environment "
            f"'{environment['name']}'"
        )
    body = body.model_copy(update={"project_id": project["id"], "project": None})
    return await answer(http_request, state, principal, to_input(body, stored_config_request(row)))
