"""The v4 Logs tag: ``LogRequest`` (POST /logs), ``UpdateLogRequest`` and documented responses.

``LogRequest`` has no ``additionalProperties: false`` in the spec, so unknown keys are ignored;
its ``config`` (``ModelConfigRequest``) has it, so unknown config keys are a 422, as for chat.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from chatgate.api.schemas.chat import ModelEndpoint
from chatgate.api.schemas.common import (
    ChatMessage,
    LinkedToolRequest,
    ModelConfigToolRequest,
    ReasoningEffort,
    ResponseFormat,
    TemplateLanguage,
    _Lenient,
    _Strict,
)
from chatgate.api.schemas.feedback import Feedback, FeedbackResponse
from chatgate.api.schemas.values import (
    Int64,
    JsonObject,
    Label,
    MaxTokens,
    Moment,
    Name,
    ProviderName,
    ShortId,
    TokenCount,
)

Judgment = bool | Int64 | float | list[str] | str


class ModelConfigRequest(_Strict):
    """The config a logged call used. ``endpoint`` defaults to ``chat`` (see docs/compat.md)."""

    type: Literal["model"] = "model"
    model: Label
    provider: ProviderName = "openai"
    name: Name | None = None
    description: str | None = None
    max_tokens: MaxTokens = -1
    temperature: float = 1.0
    top_p: float = 1.0
    stop: str | list[str] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    other: JsonObject = Field(default_factory=dict)
    seed: Int64 | None = None
    response_format: ResponseFormat | None = None
    endpoint: ModelEndpoint = "chat"
    prompt_template: str | None = None
    chat_template: list[ChatMessage] | None = None
    tools: list[LinkedToolRequest | ModelConfigToolRequest] | None = None
    reasoning_effort: ReasoningEffort | None = None
    template_language: TemplateLanguage | None = None


class ToolConfigRequest(_Lenient):
    type: Literal["tool"]
    name: str


class LogRequest(_Lenient):
    project: Name | None = None
    project_id: str | None = None
    session_id: str | None = None
    session_reference_id: Name | None = None
    parent_id: str | None = None
    parent_reference_id: Name | None = None
    inputs: JsonObject = Field(default_factory=dict)
    source: Name | None = None
    metadata: JsonObject | None = None
    save: bool = True
    source_datapoint_id: ShortId | None = None
    reference_id: Name | None = None
    messages: list[ChatMessage] | None = None
    output: str | None = None
    judgment: Judgment | None = None
    config_id: str | None = None
    config: ModelConfigRequest | ToolConfigRequest | None = None
    environment: Label | None = None
    feedback: Feedback | list[Feedback] | None = None
    created_at: Moment | None = None
    error: str | None = None
    stdout: str | None = None
    duration: float | None = None
    output_message: ChatMessage | None = None
    prompt_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    prompt_cost: float | None = None
    output_cost: float | None = None
    provider_request: JsonObject | None = None
    provider_response: JsonObject | None = None


class LogRequestBody(RootModel[list[LogRequest] | LogRequest]):
    """Body of ``POST /v4/logs``: one log or a list."""


class UpdateLogRequest(_Lenient):
    output: str | None = None
    error: str | None = None
    duration: float | None = None


class CreateLogResponse(BaseModel):
    id: str
    project_id: str
    session_id: str | None = None


class LogResponse(BaseModel):
    """Documented shape of a log (rendered by hand in render.py with every key present)."""

    id: str
    project: str | None = None
    project_id: str | None = None
    session_id: str | None = None
    parent_id: str | None = None
    reference_id: str | None = None
    inputs: dict[str, Any] | None = None
    output: str | None = None
    config_id: str | None = None
    config: dict[str, Any]
    feedback: list[FeedbackResponse] = Field(default_factory=list)
    created_at: str | None = None
    updated_at: str
    evaluation_results: list[Any]
    observability_status: str


class PaginatedLogs(BaseModel):
    records: list[LogResponse]
    page: int
    size: int
    total: int
