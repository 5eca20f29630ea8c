"""The v4 Chats tag: request bodies exactly as the v4 schema declares them, and the response."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from chatgate.api.schemas.common import (
    ChatMessage,
    FunctionTool,
    LinkedToolRequest,
    ModelConfigToolRequest,
    ReasoningEffort,
    ResponseFormat,
    TemplateLanguage,
    ToolCallModel,
    ToolChoiceField,
    Usage,
    _Strict,
)
from chatgate.api.schemas.values import (
    HeaderSafe,
    Int64,
    JsonObject,
    Label,
    MaxTokens,
    Name,
    ProviderName,
    ShortId,
)
from chatgate.domain import ModelConfig
from chatgate.errors import InvalidRequest
from chatgate.services.chat import ChatInput

ModelEndpoint = Literal["complete", "chat", "edit"]


class ModelConfigChatRequest(_Strict):
    model: Label
    #: Checked against the provider table in the service (v4 enum, ``deepseek``, operator names).
    provider: ProviderName = "openai"
    name: Name | None = None
    description: str | None = None
    max_tokens: MaxTokens = -1
    temperature: float = 1.0
    top_p: float = 1.0
    stop: str | list[str] | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    other: JsonObject = Field(default_factory=dict)
    seed: Int64 | None = None
    response_format: ResponseFormat | None = None
    endpoint: ModelEndpoint = "chat"
    chat_template: list[ChatMessage] | None = None
    tools: list[LinkedToolRequest | ModelConfigToolRequest] | None = None
    # Late (2025) fields, also accepted at the top level of the request (the top level wins).
    reasoning_effort: ReasoningEffort | None = None
    template_language: TemplateLanguage | None = None


class _ChatRequestBase(_Strict):
    messages: list[ChatMessage]
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
    #: Any string-valued key is accepted (v4 lists openai, anthropic, ...; newer clients add more).
    provider_api_keys: dict[str, HeaderSafe | None] | None = None
    num_samples: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    user: Name | None = None
    seed: Int64 | None = Field(default=None, json_schema_extra={"deprecated": True})
    return_inputs: bool = True
    tool_choice: ToolChoiceField | None = None
    tool_call: str | dict[str, str] | None = Field(
        default=None, json_schema_extra={"deprecated": True}
    )
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None
    template_language: TemplateLanguage | None = None


class ChatRequest(_ChatRequestBase):
    """Body of ``POST /v4/chat``. Pydantic reserves ``model_config``, hence the alias."""

    config: ModelConfigChatRequest = Field(alias="model_config")


class ChatDataResponse(BaseModel):
    id: str
    index: int
    output: str
    raw_output: str
    inputs: dict[str, Any] | None = None
    finish_reason: str | None = None
    model_config_id: str
    tool_results: list[dict[str, Any]] | None = None
    messages: list[ChatMessage] | None = None
    tool_call: FunctionTool | None = None
    tool_calls: list[ToolCallModel] | None = None
    output_message: ChatMessage


class ChatResponse(BaseModel):
    """Documented response of the chat endpoints (built by hand on the hot path)."""

    project_id: str | None = None
    num_samples: int | None = 1
    logprobs: int | None = None
    suffix: str | None = None
    user: str | None = None
    data: list[ChatDataResponse]
    usage: Usage | None = None
    metadata: dict[str, Any] | None = None
    provider_responses: list[Any]
    provider_request: dict[str, Any] | None = None
    session_id: str | None = None
    tool_choice: ToolChoiceField | None = None


def normalise_tool_choice(
    tool_choice: ToolChoiceField | None, tool_call: str | dict[str, str] | None
) -> str | dict[str, Any] | None:
    """``tool_choice`` wins; the deprecated ``tool_call`` ("none" | "auto" | {"name": f}) maps onto it."""
    if tool_choice is not None:
        return tool_choice if isinstance(tool_choice, str) else tool_choice.model_dump()
    if tool_call is None:
        return None
    if isinstance(tool_call, str):
        if tool_call not in ("none", "auto", "required"):
            raise InvalidRequest.at(
                ("body", "tool_call"), "expected 'none', 'auto' or {\"name\": ...}", "enum"
            )
        return tool_call
    if "name" not in tool_call:
        raise InvalidRequest.at(
            ("body", "tool_call", "name"), "field required", "value_error.missing"
        )
    return {"type": "function", "function": {"name": tool_call["name"]}}


def _exclusive(body: _ChatRequestBase, first: str, second: str) -> None:
    if getattr(body, first) is not None and getattr(body, second) is not None:
        raise InvalidRequest.at(("body", second), f"specify at most one of {first} and {second}")


def to_input(body: _ChatRequestBase, config: ModelConfigChatRequest) -> ChatInput:
    """The v4 body as the service's input; the top-level late fields win over model_config's."""
    _exclusive(body, "session_id", "session_reference_id")
    _exclusive(body, "parent_id", "parent_reference_id")
    if body.project is None and body.project_id is None:
        raise InvalidRequest.at(
            ("body", "project"),
            "either project or project_id must be provided",
            "value_error.missing",
        )
    linked = tuple(t.id for t in config.tools or [] if isinstance(t, LinkedToolRequest))
    effective = config_to_domain(
        config,
        seed=body.seed,
        reasoning_effort=body.reasoning_effort,
        template_language=body.template_language,
    )
    tool_choice = normalise_tool_choice(body.tool_choice, body.tool_call)
    return ChatInput(
        config=effective,
        messages=tuple(m.to_domain() for m in body.messages),
        project=body.project,
        project_id=body.project_id,
        session_id=body.session_id,
        session_reference_id=body.session_reference_id,
        parent_id=body.parent_id,
        parent_reference_id=body.parent_reference_id,
        inputs=body.inputs,
        source=body.source,
        metadata=body.metadata,
        save=body.save,
        source_datapoint_id=body.source_datapoint_id,
        provider_api_keys=body.provider_api_keys,
        num_samples=body.num_samples,
        stream=body.stream,
        user=body.user,
        return_inputs=body.return_inputs,
        tool_choice=tool_choice,
        response_format=body.response_format.model_dump(exclude_none=True)
        if body.response_format
        else None,
        linked_tool_ids=linked,
    )


def config_to_domain(
    config: ModelConfigChatRequest,
    *,
    seed: int | None = None,
    reasoning_effort: ReasoningEffort | None = None,
    template_language: TemplateLanguage | None = None,
) -> ModelConfig:
    """The wire config as the domain config; the request-level values given here win over the
    config's late fields, and the deprecated request ``seed`` applies only when it has none."""
    inline_tools = [t for t in config.tools or [] if isinstance(t, ModelConfigToolRequest)]
    seed = config.seed if config.seed is not None else seed
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
        seed=seed,
        response_format=config.response_format.model_dump(exclude_none=True)
        if config.response_format
        else None,
        endpoint=config.endpoint,
        chat_template=tuple(m.to_domain() for m in config.chat_template or []),
        tools=tuple(t.to_domain() for t in inline_tools),
        reasoning_effort=reasoning_effort
        if reasoning_effort is not None
        else config.reasoning_effort,
        template_language=template_language or config.template_language or "default",
        name=config.name,
        description=config.description,
    )
