"""v4 Logs (list, get, log, update, delete) and project export, scoped to the caller's organisation.

Logs recorded with ``POST /logs`` are committed by the same group-commit writer as chat logs: the
200 is sent only once they (and the feedback given with them) are stored.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from chatgate import ids
from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import OrgDep, StateDep
from chatgate.api.errors import json_response
from chatgate.api.params import MAX_PAGE_SIZE, NO_NUL, PageQuery, moment, page_bounds
from chatgate.api.render import log_response, paginated
from chatgate.api.routes.feedback import checked_feedback, repo
from chatgate.api.schemas.logs import (
    CreateLogResponse,
    LogRequest,
    LogRequestBody,
    LogResponse,
    ModelConfigRequest,
    PaginatedLogs,
    UpdateLogRequest,
)
from chatgate.domain import LogRecord, ModelConfig
from chatgate.errors import InvalidRequest, NotFound, NotImplementedByServer
from chatgate.services.recorder import without_payloads
from chatgate.services.resolve import Placement, Resolver
from chatgate.state import AppState
from chatgate.store.logs_repo import LogExtras, LogFilter, LogsRepo, decoded_log

router = APIRouter(dependencies=NO_NUL)

Loc = tuple[str | int, ...]


async def render_logs(
    state: AppState, org_id: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Stored log rows as ``LogResponse`` bodies, with their configs and feedback."""
    store = repo(state)
    configs = await state.store.call(store.configs, org_id, [r["config_id"] for r in rows])
    feedback = await state.store.call(store.feedback_for, org_id, [r["id"] for r in rows])
    return [
        log_response(decoded_log(r), configs.get(r["config_id"]), feedback[r["id"]]) for r in rows
    ]


async def _one_log(state: AppState, org_id: str, log_id: str) -> dict[str, Any]:
    row = await state.store.call(state.store.log, org_id, log_id)
    if row is None:
        raise NotFound(f"log '{log_id}' not found")
    return (await render_logs(state, org_id, [row]))[0]


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
    if project_id is None and session_id is None:
        raise InvalidRequest.at(
            ("query", "project_id"), "project_id (or session_id) is required", "missing"
        )
    org_id = principal.org_id
    if (
        project_id is not None
        and await state.store.call(state.store.project, org_id, project_id) is None
    ):
        raise NotFound(f"project '{project_id}' not found")
    if (
        session_id is not None
        and await state.store.call(state.store.session, org_id, session_id) is None
    ):
        raise NotFound(f"session '{session_id}' not found")
    where = LogFilter(
        project_id=project_id,
        session_id=session_id,
        search=search,
        metadata_search=metadata_search,
        start=moment(start_date, "start_date", end=False),
        end=moment(end_date, "end_date", end=True),
    )
    served, offset = page_bounds(page, size)
    found = await state.store.call(repo(state).list_logs, org_id, where, offset=offset, limit=size)
    records = await render_logs(state, org_id, found.rows)
    return json_response(paginated(records, served, size, found.total))


@router.get(
    "/logs/{id}", tags=["Logs"], summary="Get", operation_id="Logs_get", response_model=LogResponse
)
async def get_log(id: str, principal: OrgDep, state: StateDep) -> Response:
    return json_response(await _one_log(state, principal.org_id, id))


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
    org_id = principal.org_id
    if await state.store.call(state.store.project, org_id, id) is None:
        raise NotFound(f"project '{id}' not found")
    served, offset = page_bounds(page, size)
    found = await state.store.call(
        repo(state).list_logs, org_id, LogFilter(project_id=id), offset=offset, limit=size
    )
    records = await render_logs(state, org_id, found.rows)
    return json_response(paginated(records, served, size, found.total))


# --- recording ---------------------------------------------------------------------------------


def _domain_config(config: ModelConfigRequest) -> ModelConfig:
    from chatgate.api.schemas.common import LinkedToolRequest, ModelConfigToolRequest

    linked = [t.id for t in config.tools or [] if isinstance(t, LinkedToolRequest)]
    if linked:
        raise NotFound(f"organization tool '{linked[0]}' not found (this server has none)")
    return ModelConfig(
        provider=config.provider,
        model=config.model,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        stop=config.stop,
        presence_penalty=config.presence_penalty,
        frequency_penalty=config.frequency_penalty,
        other=config.other,
        seed=config.seed,
        response_format=config.response_format.model_dump(exclude_none=True)
        if config.response_format
        else None,
        endpoint=config.endpoint,
        chat_template=tuple(m.to_domain() for m in config.chat_template or []),
        tools=tuple(
            t.to_domain() for t in config.tools or [] if isinstance(t, ModelConfigToolRequest)
        ),
        reasoning_effort=config.reasoning_effort,
        template_language=config.template_language or "default",
        name=config.name,
        description=config.description,
    )


async def _config(
    state: AppState, resolver: Resolver, org_id: str, item: LogRequest, loc: Loc
) -> dict[str, Any]:
    """The stored config of a logged call (get-or-create by identity, as chat does)."""
    if item.config_id is not None:
        row = await state.store.call(state.store.config, org_id, item.config_id)
        if row is None:
            raise NotFound(f"model config '{item.config_id}' not found")
        return row
    if item.config is None:
        raise InvalidRequest.at(
            (*loc, "config"), "config is required unless config_id is given", "missing"
        )
    if not isinstance(item.config, ModelConfigRequest):
        raise NotImplementedByServer("logging with a tool config is not supported by chatgate")
    config = _domain_config(item.config)
    if item.config.prompt_template is None:
        config_id = await resolver.config(org_id, config)
    else:
        body = {**config.identity(), "prompt_template": item.config.prompt_template}
        fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        config_id = await state.store.call(
            state.store.get_or_create_config,
            org_id,
            fingerprint,
            body,
            config.name,
            config.description,
        )
    row = await state.store.call(state.store.config, org_id, config_id)
    assert row is not None
    return row


async def _record(
    state: AppState, resolver: Resolver, org_id: str, item: LogRequest, loc: Loc
) -> tuple[LogRecord, LogExtras, list[dict[str, Any]]]:
    placed = await resolver.place(
        org_id,
        Placement(
            project=item.project,
            project_id=item.project_id,
            session_id=item.session_id,
            session_reference_id=item.session_reference_id,
            parent_id=item.parent_id,
            parent_reference_id=item.parent_reference_id,
        ),
        loc=loc,
        exclusive=True,
    )
    project_id = placed.project_id
    config = await _config(state, resolver, org_id, item, loc)
    log_id = ids.new_id(ids.LOG)
    record = LogRecord(
        id=log_id,
        org_id=org_id,
        project_id=project_id,
        config_id=config["id"],
        provider=str(config["body"].get("provider") or ""),
        model=str(config["body"].get("model") or ""),
        created_at=item.created_at.timestamp() if item.created_at else time.time(),
        session_id=placed.session_id,
        parent_id=placed.parent_id,
        reference_id=item.reference_id,
        save=item.save,
        inputs=item.inputs,
        messages=[m.to_domain().to_v4() for m in item.messages]
        if item.messages is not None
        else None,
        output=item.output,
        raw_output=item.output,
        output_message=item.output_message.to_domain().to_v4() if item.output_message else None,
        prompt_tokens=item.prompt_tokens,
        output_tokens=item.output_tokens,
        duration=item.duration,
        provider_request=item.provider_request,
        provider_response=item.provider_response,
        metadata=item.metadata,
        source=item.source,
        source_datapoint_id=item.source_datapoint_id,
        tools=config["body"].get("tools") or None,
        error=item.error,
    )
    if not item.save:
        record = without_payloads(record)
    extras = {
        "judgment": item.judgment,
        "environment": item.environment,
        "stdout": item.stdout,
        "prompt_cost": item.prompt_cost,
        "output_cost": item.output_cost,
    }
    feedback_items = item.feedback if isinstance(item.feedback, list) else [item.feedback]
    custom = await state.store.call(repo(state).feedback_types, project_id)
    many = isinstance(item.feedback, list)
    feedback = [
        checked_feedback(
            fb,
            org_id=org_id,
            log_id=log_id,
            custom=custom,
            loc=(*loc, "feedback", j) if many else (*loc, "feedback"),
        ).row
        for j, fb in enumerate(feedback_items)
        if fb is not None
    ]
    return record, LogExtras(log_id, {k: v for k, v in extras.items() if v is not None}), feedback


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
    items: Sequence[LogRequest] = body.root if isinstance(body.root, list) else [body.root]
    records: list[LogRecord] = []
    extras: list[LogExtras] = []
    feedback: list[dict[str, Any]] = []
    resolver = state.resolver
    for index, item in enumerate(items):
        record, extra, item_feedback = await _record(
            state, resolver, principal.org_id, item, ("body", index) if many else ("body",)
        )
        records.append(record)
        extras.append(extra)
        feedback.extend(item_feedback)
    try:
        if feedback or any(e.values for e in extras):
            # Columns and feedback a chat log never has: one transaction of its own rather than
            # the group-committed writer, so the log and what came with it are stored together.
            await state.store.call(repo(state).insert_complete_logs, records, extras, feedback)
        else:
            await state.writer.write(records)
    except Exception:
        resolver.forget_projects_of(records)  # deleted by another process? resolve afresh
        raise
    created = [
        {"id": r.id, "project_id": r.project_id, "session_id": r.session_id} for r in records
    ]
    return json_response(created if many else created[0])


# --- updating and deleting ---------------------------------------------------------------------


async def _update(
    state: AppState, request: Request, org_id: str, log_id: str | None, what: str
) -> Response:
    body = await parse_body(request, UpdateLogRequest, state.settings.max_body_bytes)
    if log_id is None:
        raise NotFound(f"log {what} not found")
    values: dict[str, Any] = {}
    if "output" in body.model_fields_set:
        values.update(output=body.output, raw_output=body.output)
    if "error" in body.model_fields_set:
        values["error"] = body.error
    if "duration" in body.model_fields_set:
        values["duration"] = body.duration
    if not await state.store.call(repo(state).update_log, org_id, log_id, values):
        raise NotFound(f"log {what} not found")
    return json_response(await _one_log(state, org_id, log_id))


@router.patch(
    "/logs/{id}",
    tags=["Logs"],
    summary="Update",
    operation_id="Logs_update",
    response_model=LogResponse,
    openapi_extra=openapi_body(UpdateLogRequest),
)
async def update_log(id: str, request: Request, principal: OrgDep, state: StateDep) -> Response:
    return await _update(state, request, principal.org_id, id, f"'{id}'")


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
    found = await state.store.call(repo(state).log_id_by_reference, principal.org_id, reference_id)
    return await _update(
        state, request, principal.org_id, found, f"with reference id '{reference_id}'"
    )


@router.delete(
    "/logs", tags=["Logs"], summary="Delete", operation_id="Logs_delete", status_code=204
)
async def delete_logs(
    principal: OrgDep, state: StateDep, id: Annotated[list[str] | None, Query()] = None
) -> Response:
    store: LogsRepo = repo(state)
    await state.store.call(store.delete_logs, principal.org_id, id or [])
    return Response(status_code=204)
