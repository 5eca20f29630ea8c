"""v4 Chats: ``POST /chat``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import API_KEY_SECURITY, authenticate
from chatgate.api.disconnect import unless_client_leaves
from chatgate.api.errors import json_response
from chatgate.api.render import chat_response
from chatgate.api.schemas.chat import ChatRequest, ChatResponse, to_input
from chatgate.api.schemas.common import ErrorResponse, HTTPValidationError
from chatgate.api.sse import SSEResponse, frames
from chatgate.services.auth import Principal
from chatgate.services.chat import ChatInput
from chatgate.state import AppState

router = APIRouter(tags=["Chats"])

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": HTTPValidationError, "description": "Validation Error"},
    "4XX": {"model": ErrorResponse, "description": "Request or provider error"},
    "5XX": {"model": ErrorResponse, "description": "Server or provider error"},
}


@router.post(
    "/chat",
    response_model=ChatResponse,
    responses=_ERRORS,
    summary="Chat",
    operation_id="Chats_create",
    description="Get a chat response by providing details of the model configuration in the request.",
    openapi_extra={**openapi_body(ChatRequest), **API_KEY_SECURITY},
)
async def chat(http_request: Request) -> Response:
    state, principal = await authenticate(http_request)
    body = await parse_body(http_request, ChatRequest, state.settings.max_body_bytes)
    return await answer(http_request, state, principal, to_input(body, body.config))


async def answer(
    http_request: Request, state: AppState, principal: Principal, request: ChatInput
) -> Response:
    """Run a chat call and answer it, streamed or not (shared by every chat endpoint).

    A client that disconnects cancels the call (api/disconnect.py; streams: api/sse.py).
    """
    if request.stream:
        stream = await unless_client_leaves(
            http_request.scope,
            state.chat.stream(principal, request, state.settings.sse_keepalive_seconds),
        )
        return SSEResponse(frames(request, stream))
    outcome = await unless_client_leaves(http_request.scope, state.chat.chat(principal, request))
    return json_response(chat_response(request, outcome))
