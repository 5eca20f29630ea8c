"""v4 Feedback: ``POST /feedback``, and the project feedback types values are checked against.

Feedback attaches to a ``data_…`` log of the caller's organisation. Built-in types follow the
v4 descriptions (``rating`` is a label, ``good`` or ``bad``; ``action`` and ``issue`` are labels,
one or several; ``correction`` and ``comment`` are text); other types must first be registered
on the log's project with ``POST /projects/{id}/feedback-types``. A batch is checked completely
before anything is stored, so a 4xx stores nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from chatgate import ids
from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import OrgDep, StateDep
from chatgate.api.errors import json_response
from chatgate.api.params import NO_NUL
from chatgate.api.render import feedback_response, feedback_type_response
from chatgate.api.schemas.feedback import (
    BUILT_IN_TYPES,
    Feedback,
    FeedbackBody,
    FeedbackRequest,
    FeedbackResponse,
    FeedbackTypeModel,
    FeedbackTypeRequest,
    FeedbackTypesBody,
)
from chatgate.errors import FieldProblem, InvalidRequest, NotFound
from chatgate.state import AppState
from chatgate.store.logs_repo import FEEDBACK, LogsRepo

router = APIRouter(dependencies=NO_NUL)

#: The built-in types, as (class, allowed labels); None allows any label.
BUILT_IN: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "rating": ("select", ("good", "bad")),
    "action": ("multi_select", None),
    "issue": ("multi_select", None),
    "correction": ("text", None),
    "comment": ("text", None),
}
#: Built-in types whose value must be left out when unsetting (the v4 description).
_UNSET_WITHOUT_VALUE = ("rating", "correction", "comment")


def repo(state: AppState) -> LogsRepo:
    return LogsRepo(state.store)


def check_value(
    type_: str, value: Any, custom: dict[str, dict[str, Any]], loc: tuple[str | int, ...]
) -> FieldProblem | None:
    """Why ``value`` is not a valid ``type_`` feedback value, or None if it is."""
    if type_ in BUILT_IN:
        class_, labels = BUILT_IN[type_]
    elif type_ in custom:
        class_ = custom[type_]["class"]
        labels = tuple(v["value"] for v in custom[type_]["values"]) or None
    else:
        known = ", ".join([*BUILT_IN, *custom])
        return FieldProblem(
            (*loc, "type"),
            f"unknown feedback type '{type_}' for this log's project (known: {known}); "
            "register it with POST /v4/projects/{id}/feedback-types",
            "value_error.feedback_type",
        )
    where = (*loc, "value")
    if class_ == "text":
        if not isinstance(value, str):
            return FieldProblem(
                where, f"'{type_}' feedback is text: expected a string", "string_type"
            )
        return None
    if class_ == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return FieldProblem(where, f"'{type_}' feedback is a number", "float_type")
        return None
    chosen = value if isinstance(value, list) else [value]
    if class_ == "select" and isinstance(value, list):
        return FieldProblem(where, f"'{type_}' feedback takes one label, not a list", "string_type")
    if not chosen or not all(isinstance(v, str) for v in chosen):
        return FieldProblem(where, f"'{type_}' feedback is a label (string)", "string_type")
    if labels is not None:
        wrong = [v for v in chosen if v not in labels]
        if wrong:
            return FieldProblem(
                where,
                f"'{type_}' feedback must be one of {', '.join(labels)} (got {', '.join(wrong)})",
                "enum",
            )
    return None


@dataclass(slots=True)
class CheckedFeedback:
    row: dict[str, Any]
    #: (log id, type, value or None for every value of the type) to remove first, for ``unset``.
    unset: tuple[str, str, Any] | None = None


def checked_feedback(
    item: Feedback,
    *,
    org_id: str,
    log_id: str,
    custom: dict[str, dict[str, Any]],
    loc: tuple[str | int, ...],
) -> CheckedFeedback:
    """Validate one item for the log ``log_id``; raise InvalidRequest with every problem."""
    unset = bool(getattr(item, "unset", None))
    problems: list[FieldProblem] = []
    if unset:
        if item.value is not None and item.type in _UNSET_WITHOUT_VALUE:
            problems.append(
                FieldProblem(
                    (*loc, "value"), f"leave value out when unsetting '{item.type}'", "value_error"
                )
            )
        elif item.value is not None and (
            problem := check_value(item.type, item.value, custom, loc)
        ):
            problems.append(problem)
        elif item.type not in BUILT_IN and item.type not in custom:
            problem = check_value(item.type, "", custom, loc)
            problems.extend([problem] if problem else [])
    elif item.value is None:
        problems.append(FieldProblem((*loc, "value"), "field required", "missing"))
    elif problem := check_value(item.type, item.value, custom, loc):
        problems.append(problem)
    if problems:
        raise InvalidRequest(problems)
    row = {
        "id": ids.new_id(FEEDBACK),
        "org_id": org_id,
        "log_id": log_id,
        "type": item.type,
        "value": None if unset else item.value,
        "user": item.user,
        "created_at": item.created_at.timestamp() if item.created_at else time.time(),
    }
    return CheckedFeedback(row, (log_id, item.type, item.value) if unset else None)


@router.post(
    "/feedback",
    tags=["Feedback"],
    summary="Feedback",
    operation_id="Feedback_feedback",
    description="Submit an array of feedback for existing `data_ids`",
    response_model=list[FeedbackResponse] | FeedbackResponse,
    openapi_extra=openapi_body(FeedbackBody),
)
async def submit_feedback(request: Request, principal: OrgDep, state: StateDep) -> Response:
    body = await parse_body(request, FeedbackBody, state.settings.max_body_bytes)
    many = isinstance(body.root, list)
    items: Sequence[FeedbackRequest] = body.root if isinstance(body.root, list) else [body.root]
    store = repo(state)
    checked: list[CheckedFeedback] = []
    types_by_project: dict[str, dict[str, dict[str, Any]]] = {}
    for index, item in enumerate(items):
        loc: tuple[str | int, ...] = ("body", index) if many else ("body",)
        if item.data_id is None:
            raise InvalidRequest.at((*loc, "data_id"), "field required", "missing")
        project_id = await state.store.call(store.log_project, principal.org_id, item.data_id)
        if project_id is None:
            raise NotFound(f"log '{item.data_id}' not found")
        if project_id not in types_by_project:
            types_by_project[project_id] = await state.store.call(store.feedback_types, project_id)
        checked.append(
            checked_feedback(
                item,
                org_id=principal.org_id,
                log_id=item.data_id,
                custom=types_by_project[project_id],
                loc=loc,
            )
        )
    await state.store.call(
        store.submit_feedback,
        principal.org_id,
        [c.row for c in checked if c.unset is None],
        [c.unset for c in checked if c.unset is not None],
    )
    rendered = [feedback_response(c.row) for c in checked]
    for item, out in zip(items, rendered, strict=True):
        if item.unset and item.value is not None:
            out["value"] = item.value  # echo what was unset
    return json_response(rendered if many else rendered[0])


# --- project feedback types ----------------------------------------------------------------------


async def _project(state: AppState, org_id: str, project_id: str) -> None:
    if await state.store.call(state.store.project, org_id, project_id) is None:
        raise NotFound(f"project '{project_id}' not found")


def _type_values(item: FeedbackTypeRequest, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    if item.type in BUILT_IN_TYPES:
        raise InvalidRequest.at(
            (*loc, "type"), f"'{item.type}' is a built-in feedback type and cannot be redefined"
        )
    if item.class_ in ("select", "multi_select"):
        if not item.values:
            raise InvalidRequest.at(
                (*loc, "values"), f"a '{item.class_}' feedback type needs values", "missing"
            )
        return [v.model_dump() for v in item.values]
    if item.values:
        raise InvalidRequest.at(
            (*loc, "values"), f"a '{item.class_}' feedback type takes no values", "value_error"
        )
    return []


@router.post(
    "/projects/{id}/feedback-types",
    tags=["Projects"],
    summary="Create Feedback Type",
    operation_id="Projects_createFeedbackType",
    status_code=201,
    response_model=FeedbackTypeModel,
    openapi_extra=openapi_body(FeedbackTypeRequest),
)
async def create_feedback_type(
    id: str, request: Request, principal: OrgDep, state: StateDep
) -> Response:
    await _project(state, principal.org_id, id)
    item = await parse_body(request, FeedbackTypeRequest, state.settings.max_body_bytes)
    values = _type_values(item, ("body",))
    store = repo(state)
    await state.store.call(store.put_feedback_type, id, item.type, item.class_, values)
    types = await state.store.call(store.feedback_types, id)
    return json_response(feedback_type_response(types[item.type]), 201)


@router.patch(
    "/projects/{id}/feedback-types",
    tags=["Projects"],
    summary="Update Feedback Types",
    operation_id="Projects_updateFeedbackTypes",
    # The v4 document declares no body (SDK 0.7.35 sends none); one is accepted all the same.
    description="Update feedback types: the optional body is a FeedbackTypeRequest or a list.",
)
async def update_feedback_types(
    id: str, request: Request, principal: OrgDep, state: StateDep
) -> Response:
    await _project(state, principal.org_id, id)
    body = await parse_body(request, FeedbackTypesBody, state.settings.max_body_bytes)
    many = isinstance(body.root, list)
    items = body.root if isinstance(body.root, list) else [body.root] if body.root else []
    checked = [
        (item, _type_values(item, ("body", i) if many else ("body",)))
        for i, item in enumerate(items)
    ]
    store = repo(state)
    for item, values in checked:
        await state.store.call(store.put_feedback_type, id, item.type, item.class_, values)
    types = await state.store.call(store.feedback_types, id)
    return json_response(
        {"project_id": id, "feedback_types": [feedback_type_response(r) for r in types.values()]}
    )


def _body_models() -> list[type[BaseModel]]:
    from chatgate.api.schemas.logs import LogRequestBody, UpdateLogRequest

    return [LogRequestBody, UpdateLogRequest, FeedbackBody, FeedbackTypeRequest, FeedbackTypesBody]


#: Hand-parsed request bodies of the Logs, Feedback and feedback-type routes, for the OpenAPI.
BODY_MODELS = _body_models()
