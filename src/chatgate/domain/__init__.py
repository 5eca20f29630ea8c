"""Plain values that travel between the layers. Pydantic stays at the HTTP edge.

All are treated as immutable. The large ones built on every request (ModelConfig, ChatCall,
LogRecord) are not declared ``frozen``: a frozen dataclass pays an ``object.__setattr__`` call per
field in ``__init__`` and ``replace``, which showed up in the request profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = Any
ToolChoiceValue = str | dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    #: JSON-encoded arguments, exactly as the model produced them (may be invalid JSON).
    arguments: str

    def to_v4(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    #: A string, a list of v4 content parts (text / image_url), or None.
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    #: Reasoning blocks ({"type": "thinking", ...}); only some providers return or accept them.
    thinking: tuple[dict[str, Any], ...] | None = None

    def text(self) -> str:
        """The message's text, with content parts joined (images are skipped)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")

    def to_v4(self) -> dict[str, Any]:
        tool_calls = [c.to_v4() for c in self.tool_calls] if self.tool_calls else None
        out: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "name": self.name,
            "tool_call_id": self.tool_call_id,
            "tool_calls": tool_calls,
            # Deprecated single-call mirror that v4 clients still read.
            "tool_call": tool_calls[0]["function"] if tool_calls else None,
        }
        if self.thinking:
            out["thinking"] = list(self.thinking)
        return out


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def to_v4(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }


@dataclass(slots=True)  # not frozen: see the module docstring
class ModelConfig:
    """The effective model configuration of a call (request-level overrides already applied)."""

    provider: str
    model: str
    max_tokens: int = -1
    temperature: float = 1.0
    top_p: float = 1.0
    stop: str | list[str] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    other: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    endpoint: str = "chat"
    chat_template: tuple[Message, ...] = ()
    tools: tuple[Tool, ...] = ()
    reasoning_effort: str | int | None = None
    template_language: str = "default"
    #: Display fields: not part of the config's identity.
    name: str | None = None
    description: str | None = None

    def identity(self) -> dict[str, Any]:
        """Everything that changes what is sent to the provider, and nothing else."""
        return {
            "provider": self.provider,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "other": self.other,
            "seed": self.seed,
            "response_format": self.response_format,
            "endpoint": self.endpoint,
            "chat_template": [m.to_v4() for m in self.chat_template],
            "tools": [t.to_v4() for t in self.tools],
            "reasoning_effort": self.reasoning_effort,
            "template_language": self.template_language,
        }

    def fingerprint(self) -> str:
        canonical = orjson.dumps(self.identity(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def to_v4(self, config_id: str) -> dict[str, Any]:
        """The v4 ``ModelConfigResponse`` shape."""
        body = self.identity()
        body.update(
            id=config_id,
            type="model",
            name=self.name,
            description=self.description,
            prompt_template=None,
            tool_configs=[],
        )
        return body


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call or sample, as the provider reported them.

    ``prompt_tokens`` is every input token the model read, cached or not, so that it means the
    same on every provider; the cache counts are the parts of it read from (``cache_read_tokens``)
    or written to (``cache_write_tokens``) the provider's prompt cache. Likewise
    ``reasoning_tokens`` is the part of ``generation_tokens`` spent thinking. The optional counts
    are None when the provider did not report them, never an invented zero.
    """

    prompt_tokens: int
    generation_tokens: int
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.generation_tokens

    def to_v4(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "generation_tokens": self.generation_tokens,
            "total_tokens": self.total_tokens,
        }
        for name in _OPTIONAL_USAGE:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.generation_tokens + other.generation_tokens,
            reasoning_tokens=_add_reported(self.reasoning_tokens, other.reasoning_tokens),
            cache_read_tokens=_add_reported(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=_add_reported(self.cache_write_tokens, other.cache_write_tokens),
        )


#: Usage's optional counts, in field order (chatgate extensions of the v4 ``Usage``).
_OPTIONAL_USAGE = ("reasoning_tokens", "cache_read_tokens", "cache_write_tokens")


def _add_reported(a: int | None, b: int | None) -> int | None:
    """A sum of counts that is None only when neither side reported one."""
    if a is None and b is None:
        return None
    return (a or 0) + (b or 0)


@dataclass(slots=True)  # not frozen: see the module docstring
class ChatCall:
    """Everything a provider adapter needs for one call; the credential never leaves this object."""

    config: ModelConfig
    messages: tuple[Message, ...]
    num_samples: int = 1
    user: str | None = None
    tool_choice: ToolChoiceValue = None
    response_format: dict[str, Any] | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    #: ``base_url`` came from the request (``provider_api_keys``): the URL guard must check it.
    base_url_from_caller: bool = False
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Sample:
    """One generation of a call, as assembled from stream events."""

    index: int
    raw_output: str
    output_message: Message
    finish_reason: str | None
    #: Usage attributed to this sample (see docs/compat.md: multi-sample calls).
    usage: Usage | None = None
    error: str | None = None

    @property
    def output(self) -> str:
        return self.raw_output.strip()


@dataclass(slots=True)  # not frozen: see the module docstring
class LogRecord:
    """One stored call (one per sample). Payload fields are None when ``save`` was false."""

    id: str
    org_id: str
    project_id: str
    config_id: str
    provider: str
    model: str
    created_at: float
    sample_index: int = 0
    session_id: str | None = None
    parent_id: str | None = None
    reference_id: str | None = None
    save: bool = True
    inputs: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    output: str | None = None
    raw_output: str | None = None
    output_message: dict[str, Any] | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: Parts of ``prompt_tokens`` read from / written to the provider's prompt cache (see Usage).
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    duration: float | None = None
    provider_latency: float | None = None
    provider_request: JSON = None
    provider_response: JSON = None
    metadata: dict[str, Any] | None = None
    source: str | None = None
    source_datapoint_id: str | None = None
    user: str | None = None
    tool_choice: ToolChoiceValue = None
    tools: list[dict[str, Any]] | None = None
    error: str | None = None
    #: USD, from the price table; None when the model has no price or no usage was reported.
    prompt_cost: float | None = None
    output_cost: float | None = None
