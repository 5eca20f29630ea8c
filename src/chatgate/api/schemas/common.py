"""Wire models shared by every v4 tag: messages, tools, usage, errors. The rules for the values
inside them (bounded integers, free-form JSON, times, text lengths) are in values.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chatgate.api.schemas.values import JsonObject, ThinkingBudget
from chatgate.domain import Message, Tool, ToolCall

ChatRole = Literal["user", "assistant", "system", "tool", "developer"]
ReasoningEffort = Literal["high", "medium", "low"] | ThinkingBudget
TemplateLanguage = Literal["default", "jinja"]


class _Lenient(BaseModel):
    """Nested v4 objects without ``additionalProperties: false``: unknown keys are ignored.
    No model takes NaN or Infinity (pydantic's JSON parser would)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _Strict(BaseModel):
    """v4 objects declared with ``additionalProperties: false``: unknown keys are a 422."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class TextChatContent(_Lenient):
    type: Literal["text"]
    text: str


class ImageUrl(_Lenient):
    url: str
    detail: Literal["high", "low", "auto"] | None = None


class ImageChatContent(_Lenient):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextChatContent | ImageChatContent, Field(discriminator="type")]


class FunctionTool(_Lenient):
    name: str
    arguments: str | None = None


class ToolCallModel(_Lenient):
    id: str
    type: Literal["function"]
    function: FunctionTool


class ThinkingBlock(_Lenient):
    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class ChatMessage(_Lenient):
    role: ChatRole
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCallModel] | None = None
    tool_call: FunctionTool | None = Field(default=None, json_schema_extra={"deprecated": True})
    thinking: list[ThinkingBlock] | None = None

    def to_domain(self) -> Message:
        content: str | list[dict[str, Any]] | None
        if isinstance(self.content, list):
            content = [p.model_dump(exclude_none=True) for p in self.content]
        else:
            content = self.content
        tool_calls = [
            ToolCall(c.id, c.function.name, c.function.arguments or "")
            for c in self.tool_calls or []
        ]
        if not tool_calls and self.tool_call is not None:
            # The deprecated single call has no id; it is carried as the only tool call.
            tool_calls = [ToolCall("", self.tool_call.name, self.tool_call.arguments or "")]
        return Message(
            role=self.role,
            content=content,
            name=self.name,
            tool_call_id=self.tool_call_id,
            tool_calls=tuple(tool_calls) or None,
            thinking=tuple(b.model_dump(exclude_none=True) for b in self.thinking)
            if self.thinking
            else None,
        )


class FunctionToolChoice(_Lenient):
    name: str


class ToolChoice(_Lenient):
    type: Literal["function"]
    function: FunctionToolChoice


ToolChoiceField = Literal["none", "auto", "required"] | ToolChoice


class ResponseFormat(_Lenient):
    type: Literal["json_object", "json_schema"]
    json_schema: JsonObject | None = None


class ModelConfigToolRequest(_Lenient):
    name: str
    description: str | None = None
    strict: bool | None = None
    parameters: JsonObject | None = None
    source: Literal["organization", "inline"] | None = None
    source_code: str | None = None
    other: JsonObject | None = None
    preset_name: str | None = None

    def to_domain(self) -> Tool:
        return Tool(self.name, self.description, self.parameters, self.strict)


class LinkedToolRequest(_Lenient):
    id: str
    source: Literal["organization"]
    name: str | None = None
    description: str | None = None
    strict: bool | None = None
    parameters: JsonObject | None = None


class Usage(BaseModel):
    """v4 ``Usage``; the optional counts are chatgate extensions, present when reported."""

    prompt_tokens: int
    generation_tokens: int
    total_tokens: int
    reasoning_tokens: int | None = None
    #: Parts of ``prompt_tokens`` read from / written to the provider's prompt cache.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    detail: list[ValidationErrorItem]


class ErrorDetail(BaseModel):
    type: str
    message: str
    code: int
    origin: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail
