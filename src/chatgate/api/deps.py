"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from chatgate.services.auth import Principal
from chatgate.state import AppState

_api_key_header = APIKeyHeader(name="X-API-KEY", scheme_name="APIKeyHeader", auto_error=False)


async def get_state(request: Request) -> AppState:
    # async on purpose: FastAPI runs plain-def dependencies in a worker thread.
    state: AppState = request.app.state.chatgate
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_principal(
    state: StateDep, api_key: Annotated[str | None, Security(_api_key_header)]
) -> Principal:
    return await state.auth.authenticate(api_key)


OrgDep = Annotated[Principal, Depends(get_principal)]

#: For hot routes that authenticate by hand (no dependency resolution per request).
API_KEY_SECURITY: dict[str, object] = {"security": [{"APIKeyHeader": []}]}


async def authenticate(request: Request) -> tuple[AppState, Principal]:
    state: AppState = request.app.state.chatgate
    return state, await state.auth.authenticate(request.headers.get("x-api-key"))
