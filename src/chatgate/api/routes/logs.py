"""v4 Logs (list, get, log, update, delete) and project export, scoped to the caller's organisation.

Logs recorded with ``POST /logs`` are stored by the log service before the 200 is sent (with the
feedback given with them): see services/logs.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import OrgDep, StateDep
from chatgate.api.errors import json_response
from chatgate.api.params import MAX_PAGE_SIZE, NO_NUL, PageQuery, moment, page_bounds
from chatgate.api.render import created_log_response, log_response, paginated
from chatgate.api.schemas.logs import (
    CreateLogResponse,
    LogRequestBody,
    LogResponse,
    PaginatedLogs,
    UpdateLogRequest,
    log_change,
    log_input,
)
from chatgate.domain.logs import LogFilter

router = APIRouter(dependencies=NO_NUL)


# --- reading -----------------------------------------------------------------------------------


@router.get(
    "/logs",
    tags=["Logs"],
    summary="List",
    operation_id="Logs_list",
    response_model=PaginatedLogs,
    description="Paginated logs of a project (or, a chatgate extension, of a session), newest "
    "first. `search` matches inputs and output, `metadata_search` the metadata, both "
    "case-insensitively; `start_date`/`end_date` bound the creation time.",
)
async def list_logs(
    principal: OrgDep,
    state: StateDep,
    project_id: str | None = None,
    session_id: Annotated[
        str | None, Query(description="chatgate extension: the logs of one session.")
    ] = None,
    search: str | None = None,
    metadata_search: str | None = None,
    version_status: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    page: PageQuery = 0,
) -> Response:
    del version_status  # chatgate keeps no config versions: every log matches
    where = LogFilter(
        project_id=project_id,
        session_id=session_id,
        search=search,
        metadata_search=metadata_search,
        start=moment(start_date, "start_date", end=False),
        end=moment(end_date, "end_date", end=True),
    )
    served, offset = page_bounds(page, size)
    found = await state.logs.list(principal.org_id, where, offset=offset, limit=size)
    records = [log_response(view) for view in found.rows]
    return json_response(paginated(records, served, size, found.total))


@router.get(
    "/logs/{id}", tags=["Logs"], summary="Get", operation_id="Logs_get", response_model=LogResponse
)
async def get_log(id: str, principal: OrgDep, state: StateDep) -> Response:
    return json_response(log_response(await state.logs.get(principal.org_id, id)))


@router.post(
    "/projects/{id}/export",
    tags=["Projects"],
    summary="Export",
    operation_id="Projects_export",
    response_model=PaginatedLogs,
    description="Export all logged datapoints of the project, paginated, newest first.",
)
async def export_project(
    id: str,
    principal: OrgDep,
    state: StateDep,
    page: PageQuery = 0,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
) -> Response:
    served, offset = page_bounds(page, size)
    found = await state.logs.export(principal.org_id, id, offset=offset, limit=size)
    records = [log_response(view) for view in found.rows]
    return json_response(paginated(records, served, size, found.total))


# --- recording ---------------------------------------------------------------------------------


@router.post(
    "/logs",
    tags=["Logs"],
    summary="Log",
    operation_id="Logs_log",
    description="Log a datapoint or array of datapoints to your Humanloop project.",
    response_model=list[CreateLogResponse] | CreateLogResponse,
    openapi_extra=openapi_body(LogRequestBody),
)
async def create_logs(request: Request, principal: OrgDep, state: StateDep) -> Response:
    body = await parse_body(request, LogRequestBody, state.settings.max_body_bytes)
    many = isinstance(body.root, list)
    items = body.root if isinstance(body.root, list) else [body.root]
    records = await state.logs.record(principal.org_id, [log_input(i) for i in items], many=many)
    created = [created_log_response(r) for r in records]
    return json_response(created if many else created[0])


# --- updating and deleting ---------------------------------------------------------------------


@router.patch(
    "/logs/{id}",
    tags=["Logs"],
    summary="Update",
    operation_id="Logs_update",
    response_model=LogResponse,
    openapi_extra=openapi_body(UpdateLogRequest),
)
async def update_log(id: str, request: Request, principal: OrgDep, state: StateDep) -> Response:
    body = await parse_body(request, UpdateLogRequest, state.settings.max_body_bytes)
    return json_response(
        log_response(await state.logs.update(principal.org_id, id, log_change(body)))
    )


@router.patch(
    "/logs",
    tags=["Logs"],
    summary="Update By Reference",
    operation_id="Logs_updateByRef",
    response_model=LogResponse,
    openapi_extra=openapi_body(UpdateLogRequest),
    description="Update the newest log created with `reference_id`.",
)
async def update_log_by_reference(
    reference_id: str, request: Request, principal: OrgDep, state: StateDep
) -> Response:
    body = await parse_body(request, UpdateLogRequest, state.settings.max_body_bytes)
    view = await state.logs.update_by_reference(principal.org_id, reference_id, log_change(body))
    return json_response(log_response(view))


@router.delete(
    "/logs", tags=["Logs"], summary="Delete", operation_id="Logs_delete", status_code=204
)
async def delete_logs(
    principal: OrgDep, state: StateDep, id: Annotated[list[str] | None, Query()] = None
) -> Response:
    await state.logs.delete(principal.org_id, id or [])
    return Response(status_code=204)
