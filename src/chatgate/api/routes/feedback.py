"""v4 Feedback: ``POST /feedback``, and the project feedback types values are checked against
(the rules: services/feedback.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from chatgate.api.body import openapi_body, parse_body
from chatgate.api.deps import OrgDep, StateDep
from chatgate.api.errors import json_response
from chatgate.api.params import NO_NUL
from chatgate.api.render import feedback_response, feedback_type_response
from chatgate.api.schemas.feedback import (
    FeedbackBody,
    FeedbackResponse,
    FeedbackTypeModel,
    FeedbackTypeRequest,
    FeedbackTypesBody,
    feedback_input,
    feedback_type_input,
)

router = APIRouter(dependencies=NO_NUL)


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
    items = body.root if isinstance(body.root, list) else [body.root]
    rows = await state.feedback.submit(
        principal.org_id, [feedback_input(i) for i in items], many=many
    )
    rendered = [feedback_response(row) for row in rows]
    return json_response(rendered if many else rendered[0])


# --- project feedback types ----------------------------------------------------------------------


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
    item = await parse_body(request, FeedbackTypeRequest, state.settings.max_body_bytes)
    created = await state.feedback.create_type(principal.org_id, id, feedback_type_input(item))
    return json_response(feedback_type_response(created), 201)


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
    body = await parse_body(request, FeedbackTypesBody, state.settings.max_body_bytes)
    many = isinstance(body.root, list)
    items = body.root if isinstance(body.root, list) else [body.root] if body.root else []
    types = await state.feedback.update_types(
        principal.org_id, id, [feedback_type_input(i) for i in items], many=many
    )
    return json_response(
        {"project_id": id, "feedback_types": [feedback_type_response(t) for t in types]}
    )


def _body_models() -> list[type[BaseModel]]:
    from chatgate.api.schemas.logs import LogRequestBody, UpdateLogRequest

    return [LogRequestBody, UpdateLogRequest, FeedbackBody, FeedbackTypeRequest, FeedbackTypesBody]


#: Hand-parsed request bodies of the Logs, Feedback and feedback-type routes, for the OpenAPI.
BODY_MODELS = _body_models()
