"""v4 Chats by reference: ``POST /chat-model-config`` (a registered config) and
``POST /chat-deployed`` (the config deployed to a project's environment).

Both ask the config service for the stored config (services/configs.py: which one, and the project
the chat is logged to), turn it into the same request model /v4/chat takes and answer through the
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
    chosen = await state.configs.for_chat(
        principal.org_id, body.model_config_id, project=body.project, project_id=body.project_id
    )
    if chosen.project_id is not None:
        body = body.model_copy(update={"project_id": chosen.project_id})
    request = to_input(body, stored_config_request(chosen.config))
    return await answer(http_request, state, principal, request)


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
    chosen = await state.configs.deployed(
        principal.org_id,
        project=body.project,
        project_id=body.project_id,
        environment=body.environment,
    )
    body = body.model_copy(update={"project_id": chosen.project_id, "project": None})
    request = to_input(body, stored_config_request(chosen.config))
    return await answer(http_request, state, principal, request)
