"""v4 Logs (read side) and Sessions: a log or session is visible only to its organisation."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from chatgate.api.deps import OrgDep, StateDep
from chatgate.api.errors import json_response
from chatgate.api.render import log_response, session_response
from chatgate.errors import NotFound

router = APIRouter()


@router.get("/logs/{id}", tags=["Logs"], summary="Get", operation_id="Logs_get")
async def get_log(id: str, principal: OrgDep, state: StateDep) -> Response:
    row = await asyncio.to_thread(state.store.log, principal.org_id, id)
    if row is None:
        raise NotFound(f"log '{id}' not found")
    config = await asyncio.to_thread(state.store.config, principal.org_id, row["config_id"])
    return json_response(log_response(row, config))


@router.get("/sessions/{id}", tags=["Sessions"], summary="Get", operation_id="Sessions_get")
async def get_session(id: str, principal: OrgDep, state: StateDep) -> Response:
    summary = await asyncio.to_thread(state.store.session_summary, principal.org_id, id)
    if summary is None:
        raise NotFound(f"session '{id}' not found")
    return json_response(session_response(summary))
