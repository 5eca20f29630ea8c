"""v4 Sessions: create, list a project's sessions, get one. Visible only to their organisation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from chatgate.api.deps import OrgDep, StateDep
from chatgate.api.errors import json_response
from chatgate.api.params import MAX_PAGE, MAX_PAGE_SIZE, NO_NUL, page_bounds
from chatgate.api.render import paginated, session_response
from chatgate.api.schemas.sessions import CreateSessionResponse, PaginatedSessions, SessionResponse

router = APIRouter(tags=["Sessions"], dependencies=NO_NUL)


@router.post(
    "/sessions",
    summary="Create",
    operation_id="Sessions_create",
    status_code=201,
    response_model=CreateSessionResponse,
    description="Create a new session; log to it with its `session_id`.",
)
async def create_session(principal: OrgDep, state: StateDep) -> Response:
    return json_response({"id": await state.sessions.create(principal.org_id)}, 201)


@router.get(
    "/sessions",
    summary="List",
    operation_id="Sessions_list",
    response_model=PaginatedSessions,
    description="Sessions with at least one log in the project, newest first.",
)
async def list_sessions(
    project_id: str,
    principal: OrgDep,
    state: StateDep,
    page: Annotated[int, Query(ge=0, le=MAX_PAGE, description="Page to fetch. Starts from 1.")] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
) -> Response:
    served, offset = page_bounds(page, size)
    found = await state.sessions.list(principal.org_id, project_id, offset=offset, limit=size)
    records = [session_response(s) for s in found.rows]
    return json_response(paginated(records, served, size, found.total))


@router.get(
    "/sessions/{id}", summary="Get", operation_id="Sessions_get", response_model=SessionResponse
)
async def get_session(id: str, principal: OrgDep, state: StateDep) -> Response:
    return json_response(session_response(await state.sessions.get(principal.org_id, id)))
