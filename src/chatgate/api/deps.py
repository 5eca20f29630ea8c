"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from chatgate.services.auth import Principal
from chatgate.state import AppState

_api_key_header = APIKeyHeader(name="X-API-KEY", scheme_name="APIKeyHeader", auto_error=False)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.chatgate
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_principal(
    state: StateDep, api_key: Annotated[str | None, Security(_api_key_header)]
) -> Principal:
    return await state.auth.authenticate(api_key)


OrgDep = Annotated[Principal, Depends(get_principal)]
