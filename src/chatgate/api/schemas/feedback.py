"""The v4 Feedback tag, and the project feedback types feedback is checked against.

``feedback_input`` and ``feedback_type_input`` turn the bodies into the feedback service's inputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, RootModel

from chatgate.api.schemas.common import _Lenient
from chatgate.api.schemas.values import Int64, Label, Moment, Name
from chatgate.services.feedback import FeedbackInput, FeedbackTypeInput

FeedbackValue = bool | Int64 | float | list[str] | str
FeedbackClass = Literal["select", "multi_select", "text", "number"]
LabelSentiment = Literal["positive", "negative", "neutral", "unset"]


class Feedback(_Lenient):
    """Feedback given with a log (``POST /v4/logs``): its ``data_id`` is the new log's."""

    type: Label
    value: FeedbackValue | None = None
    data_id: str | None = None
    user: Name | None = None
    created_at: Moment | None = None


class FeedbackRequest(Feedback):
    """One item of ``POST /v4/feedback``."""

    unset: bool | None = None


class FeedbackBody(RootModel[list[FeedbackRequest] | FeedbackRequest]):
    """Body of ``POST /v4/feedback``: one item or a list."""


def feedback_input(item: Feedback) -> FeedbackInput:
    return FeedbackInput(
        type=item.type,
        value=item.value,
        log_id=item.data_id,
        user=item.user,
        created_at=item.created_at.timestamp() if item.created_at else None,
        unset=isinstance(item, FeedbackRequest) and bool(item.unset),
    )


class FeedbackResponse(BaseModel):
    id: str
    type: str
    value: FeedbackValue | None
    data_id: str | None = None
    user: str | None = None
    created_at: datetime | None = None


class FeedbackLabelRequest(_Lenient):
    value: str
    sentiment: LabelSentiment = "neutral"


class FeedbackTypeRequest(_Lenient):
    type: Label
    class_: FeedbackClass = Field(alias="class")
    values: list[FeedbackLabelRequest] | None = None


class FeedbackTypesBody(RootModel[list[FeedbackTypeRequest] | FeedbackTypeRequest | None]):
    """Body of ``PATCH /v4/projects/{id}/feedback-types``: a list, one type, or nothing."""


def feedback_type_input(item: FeedbackTypeRequest) -> FeedbackTypeInput:
    values = [v.model_dump() for v in item.values] if item.values is not None else None
    return FeedbackTypeInput(item.type, item.class_, values)


class CategoricalFeedbackLabel(BaseModel):
    value: str
    sentiment: LabelSentiment


class FeedbackTypeModel(BaseModel):
    type: str
    values: list[CategoricalFeedbackLabel] | None = None
