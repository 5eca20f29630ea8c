"""The v4 Logs tag: ``LogRequest`` (POST /logs), ``UpdateLogRequest`` and documented responses.

``LogRequest`` has no ``additionalProperties: false`` in the spec, so unknown keys are ignored;
its ``config`` (``ModelConfigRequest``) has it, so unknown config keys are a 422, as for chat.
``log_input`` and ``log_change`` turn the bodies into the log service's inputs.
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
from chatgate.api.schemas.feedback import Feedback, FeedbackResponse, feedback_input
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
from chatgate.domain import ModelConfig
from chatgate.services.feedback import FeedbackInput
from chatgate.services.logs import LogChange, LoggedConfig, LogInput, ToolConfig
from chatgate.services.resolve import Placement

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

    def to_domain(self) -> LoggedConfig:
        """The config as the log service takes it (organisation tools, which chatgate does not
        have, are listed by id for the service to refuse)."""
        inline = [t for t in self.tools or [] if isinstance(t, ModelConfigToolRequest)]
        config = ModelConfig(
            provider=self.provider,
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            other=self.other,
            seed=self.seed,
            response_format=self.response_format.model_dump(exclude_none=True)
            if self.response_format
            else None,
            endpoint=self.endpoint,
            chat_template=tuple(m.to_domain() for m in self.chat_template or []),
            tools=tuple(t.to_domain() for t in inline),
            reasoning_effort=self.reasoning_effort,
            template_language=self.template_language or "default",
            name=self.name,
            description=self.description,
        )
        linked = tuple(t.id for t in self.tools or [] if isinstance(t, LinkedToolRequest))
        return LoggedConfig(config, self.prompt_template, linked_tool_ids=linked)


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


def log_input(item: LogRequest) -> LogInput:
    config: LoggedConfig | ToolConfig | None = None
    if isinstance(item.config, ModelConfigRequest):
        config = item.config.to_domain()
    elif isinstance(item.config, ToolConfigRequest):
        config = ToolConfig(item.config.name)
    feedback: FeedbackInput | list[FeedbackInput] | None = None
    if isinstance(item.feedback, list):
        feedback = [feedback_input(f) for f in item.feedback]
    elif item.feedback is not None:
        feedback = feedback_input(item.feedback)
    return LogInput(
        where=Placement(
            project=item.project,
            project_id=item.project_id,
            session_id=item.session_id,
            session_reference_id=item.session_reference_id,
            parent_id=item.parent_id,
            parent_reference_id=item.parent_reference_id,
        ),
        config_id=item.config_id,
        config=config,
        inputs=item.inputs,
        source=item.source,
        metadata=item.metadata,
        save=item.save,
        source_datapoint_id=item.source_datapoint_id,
        reference_id=item.reference_id,
        messages=tuple(m.to_domain() for m in item.messages) if item.messages is not None else None,
        output=item.output,
        output_message=item.output_message.to_domain() if item.output_message else None,
        judgment=item.judgment,
        environment=item.environment,
        feedback=feedback,
        created_at=item.created_at.timestamp() if item.created_at else None,
        error=item.error,
        stdout=item.stdout,
        duration=item.duration,
        prompt_tokens=item.prompt_tokens,
        output_tokens=item.output_tokens,
        prompt_cost=item.prompt_cost,
        output_cost=item.output_cost,
        provider_request=item.provider_request,
        provider_response=item.provider_response,
    )


class UpdateLogRequest(_Lenient):
    output: str | None = None
    error: str | None = None
    duration: float | None = None


def log_change(body: UpdateLogRequest) -> LogChange:
    """Only the fields the body gives change (a field given as null is cleared)."""
    given = body.model_fields_set & {"output", "error", "duration"}
    return LogChange(**{name: getattr(body, name) for name in given})


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
