"""The Anthropic Messages wire (``POST {base_url}/v1/messages``, API version 2023-06-01).

A v4 call is translated into one Messages request: system messages become the top-level
``system``, tool results become ``tool_result`` blocks of a user turn and consecutive same-role
turns are merged (Anthropic requires alternating roles). Anthropic has no ``n``: a call with
``num_samples > 1`` runs one upstream call per sample, concurrently, and merges their events
through a bounded queue (``_samples.merged_samples``). The field table is in docs/providers.md.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from chatgate.domain import ChatCall, Message, Usage
from chatgate.errors import InvalidRequest, ProviderConnectionError, ProviderError
from chatgate.providers import _http
from chatgate.providers._samples import merged_samples
from chatgate.providers._sse import SSEDecoder
from chatgate.providers.anthropic_models import THINKING_BUDGETS, max_output_tokens
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.streaming import (
    Finish,
    RawResponse,
    StreamEvent,
    StreamFailed,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageReport,
)

API_VERSION = "2023-06-01"

#: Anthropic ``stop_reason`` -> v4 finish reason. ``refusal`` (the model declined for safety
#: reasons) is v4's ``content_filter``, as OpenAI names the same outcome; unknown values and
#: ``pause_turn`` (a server-tool turn to be continued) pass through unchanged.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}

#: Anthropic error ``type`` -> the HTTP status Anthropic documents for it. Used for ``error``
#: events inside a stream, which arrive on a 200 and carry only the type.
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

#: v4 tool_choice strings -> Anthropic's tool_choice type.
TOOL_CHOICES: dict[str, str] = {"none": "none", "auto": "auto", "required": "any"}

#: Roles that become the top-level ``system`` (``developer`` is the newer name for system).
SYSTEM_ROLES = frozenset({"system", "developer"})


_DATA_URL = re.compile(r"data:(?P<media_type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
_PARAMETER = "value_error.provider_parameter"

Loc = tuple[str | int, ...]


def _refuse(spec: ProviderSpec, loc: Loc, what: str) -> InvalidRequest:
    return InvalidRequest.at(loc, f"provider '{spec.name}' (Anthropic Messages) {what}", _PARAMETER)


# --- request ------------------------------------------------------------------------------------


def _image_block(part: dict[str, Any], loc: Loc, spec: ProviderSpec) -> dict[str, Any]:
    image = part.get("image_url") or {}
    url = str(image.get("url") or "")
    detail = image.get("detail")
    if detail not in (None, "auto"):
        raise _refuse(spec, (*loc, "image_url", "detail"), "has no image detail setting")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _refuse(
            spec, (*loc, "image_url", "url"), "takes images as http(s) URLs or base64 data URLs"
        )
    return {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": match["media_type"],
            "data": match["data"],
        },
    }


def _content_blocks(
    content: str | list[dict[str, Any]] | None, loc: Loc, spec: ProviderSpec
) -> list[dict[str, Any]]:
    """v4 content (a string or text/image_url parts) as Anthropic blocks; empty text is left out
    because Anthropic rejects empty text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, (*loc, "content", n), spec))
        else:
            raise _refuse(spec, (*loc, "content", n, "type"), f"has no content part '{kind}'")
    return blocks


def _tool_input(arguments: str, loc: Loc, spec: ProviderSpec) -> Any:
    if not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise _refuse(
            spec, loc, "needs tool call arguments that are a JSON object (sent as `input`)"
        ) from None


def _assistant_blocks(message: Message, loc: Loc, spec: ProviderSpec) -> list[dict[str, Any]]:
    # Thinking blocks go back first, unchanged: Anthropic requires them (with their signatures)
    # on the assistant turn that made a tool call when thinking is enabled.
    blocks: list[dict[str, Any]] = [dict(block) for block in message.thinking or ()]
    blocks += _content_blocks(message.content, loc, spec)
    for n, call in enumerate(message.tool_calls or ()):
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(
                    call.arguments, (*loc, "tool_calls", n, "function", "arguments"), spec
                ),
            }
        )
    return blocks


def _tool_result(message: Message, loc: Loc, spec: ProviderSpec) -> dict[str, Any]:
    if not message.tool_call_id:
        raise _refuse(spec, (*loc, "tool_call_id"), "needs the tool_call_id of a tool message")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if isinstance(message.content, str):
        block["content"] = message.content
    elif message.content is not None:
        block["content"] = _content_blocks(message.content, loc, spec)
    return block


def _conversation(
    messages: tuple[Message, ...], spec: ProviderSpec
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(top-level ``system``, alternating ``messages``)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        loc: Loc = ("body", "messages", i)
        role = message.role
        if message.name is not None and role in ("user", "assistant"):
            raise _refuse(spec, (*loc, "name"), "has no participant names on messages")
        if role in SYSTEM_ROLES:
            for block in _content_blocks(message.content, loc, spec):
                if block["type"] != "text":
                    raise _refuse(spec, (*loc, "content"), "takes only text in system messages")
                system.append(block)
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result(message, loc, spec)]
        elif role == "user":
            blocks = _content_blocks(message.content, loc, spec)
        elif role == "assistant":
            blocks = _assistant_blocks(message, loc, spec)
        else:
            raise _refuse(spec, (*loc, "role"), f"has no message role '{role}'")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if not content:
            turn["content"] = ""
        elif len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    if not system:
        return None, turns
    if len(system) == 1:
        return system[0]["text"], turns
    return system, turns


def _tool_choice(choice: Any, spec: ProviderSpec) -> dict[str, Any]:
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return {"type": TOOL_CHOICES[choice]}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    raise _refuse(spec, ("body", "tool_choice"), f"has no tool_choice {choice!r}")


def _thinking_budget(call: ChatCall, spec: ProviderSpec) -> int | None:
    effort = call.config.reasoning_effort
    if effort is None:
        return None
    if isinstance(effort, int):
        return effort
    if effort not in THINKING_BUDGETS:
        raise _refuse(
            spec,
            ("body", "reasoning_effort"),
            f"takes reasoning_effort as a token budget or one of {', '.join(THINKING_BUDGETS)}",
        )
    return THINKING_BUDGETS[effort]


def _refuse_unsupported(call: ChatCall, spec: ProviderSpec) -> None:
    """v4 parameters Anthropic has no equivalent for; v4's defaults are not asking for them."""
    config = call.config
    if config.presence_penalty != 0:
        raise _refuse(spec, ("body", "model_config", "presence_penalty"), "has no presence_penalty")
    if config.frequency_penalty != 0:
        raise _refuse(
            spec, ("body", "model_config", "frequency_penalty"), "has no frequency_penalty"
        )
    if config.seed is not None:
        raise _refuse(spec, ("body", "model_config", "seed"), "has no seed")
    response_format = call.response_format or config.response_format
    if response_format is not None and response_format.get("type") != "text":
        loc: Loc = (
            ("body", "response_format")
            if call.response_format
            else ("body", "model_config", "response_format")
        )
        raise _refuse(spec, loc, "has no JSON mode (response_format); describe the JSON in a tool")
    for n, tool in enumerate(config.tools):
        if tool.strict:
            raise _refuse(
                spec, ("body", "model_config", "tools", n, "strict"), "has no strict tool schemas"
            )


def build_body(call: ChatCall, spec: ProviderSpec) -> dict[str, Any]:
    config = call.config
    _refuse_unsupported(call, spec)
    system, messages = _conversation(call.messages, spec)
    # `other` first: the v4 fields below are explicit and win over a duplicate in `other`.
    body: dict[str, Any] = dict(config.other)
    body.pop("stream", None)
    body["model"] = config.model
    if system is not None:
        body["system"] = system
    body["messages"] = messages
    max_tokens = config.max_tokens if config.max_tokens != -1 else max_output_tokens(config.model)
    body["max_tokens"] = max_tokens
    # Anthropic's defaults equal v4's (temperature 1, top_p unset = 1); newer models refuse
    # temperature and top_p together, so only a value that differs from the default is sent.
    if config.temperature != 1:
        body["temperature"] = config.temperature
    if config.top_p != 1:
        body["top_p"] = config.top_p
    if config.stop:
        body["stop_sequences"] = [config.stop] if isinstance(config.stop, str) else config.stop
    if call.user is not None:
        body["metadata"] = {**(body.get("metadata") or {}), "user_id": call.user}
    if config.tools:
        tools = []
        for tool in config.tools:
            entry: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                entry["description"] = tool.description
            entry["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
            tools.append(entry)
        body["tools"] = tools
        if call.tool_choice is not None:
            body["tool_choice"] = _tool_choice(call.tool_choice, spec)
    budget = _thinking_budget(call, spec)
    if budget is not None:
        if max_tokens <= budget:
            raise _refuse(
                spec,
                ("body", "model_config", "max_tokens"),
                f"counts thinking in max_tokens: max_tokens ({max_tokens}"
                f"{', the model maximum' if config.max_tokens == -1 else ''}) must exceed the "
                f"thinking budget ({budget}) of reasoning_effort",
            )
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if call.stream:
        body["stream"] = True
    return body


# --- response -----------------------------------------------------------------------------------


def usage_from(payload: dict[str, Any] | None) -> Usage | None:
    """``input_tokens`` leaves out the cache: v4 ``prompt_tokens`` is it plus the cache writes
    (``cache_creation_input_tokens``) and reads (``cache_read_input_tokens``), which are also
    kept apart. Thinking is part of ``output_tokens`` and is not counted separately."""
    if not payload:
        return None
    written = payload.get("cache_creation_input_tokens")
    read = payload.get("cache_read_input_tokens")
    return Usage(
        prompt_tokens=int(payload.get("input_tokens") or 0) + int(written or 0) + int(read or 0),
        generation_tokens=int(payload.get("output_tokens") or 0),
        cache_read_tokens=int(read) if read is not None else None,
        cache_write_tokens=int(written) if written is not None else None,
    )


def _arguments(tool_input: Any) -> str:
    """Tool input as v4 arguments: compact JSON, the same for streamed and whole responses."""
    return orjson.dumps(tool_input).decode()


def _finish(index: int, reason: str | None) -> Finish:
    return Finish(index, FINISH_REASONS.get(reason, reason) if reason else None)


def events_from_message(message: dict[str, Any], index: int) -> list[StreamEvent]:
    """A whole (non-streamed) Message as the same events its stream would produce."""
    events: list[StreamEvent] = [RawResponse(message)]
    call_index = 0
    for position, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            events.append(TextDelta(index, block["text"]))
        elif kind == "thinking":
            events.append(
                ThinkingDelta(
                    index,
                    position,
                    "thinking",
                    text=block.get("thinking") or "",
                    signature=block.get("signature"),
                )
            )
        elif kind == "redacted_thinking":
            events.append(
                ThinkingDelta(index, position, "redacted_thinking", data=block.get("data"))
            )
        elif kind == "tool_use":
            events.append(
                ToolCallDelta(
                    index,
                    call_index,
                    block.get("id"),
                    block.get("name"),
                    _arguments(block.get("input") or {}),
                )
            )
            call_index += 1
    usage = usage_from(message.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage, index))
    events.append(_finish(index, message.get("stop_reason")))
    return events


class MessageAssembler:
    """Translates one Messages stream into events, and rebuilds the Message the same call would
    have returned without streaming (the log's provider_response)."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._message: dict[str, Any] | None = None
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._tool_order: dict[int, int] = {}
        self.stopped = False

    @property
    def started(self) -> bool:
        return self._message is not None

    def feed(self, kind: str, data: dict[str, Any]) -> list[StreamEvent]:
        index = self._index
        if kind == "message_start":
            self._message = dict(data["message"])
            self._usage = dict(self._message.get("usage") or {})
            return []
        if kind == "content_block_start":
            position = int(data["index"])
            block = dict(data["content_block"])
            self._blocks[position] = block
            if block.get("type") == "tool_use":
                self._tool_order[position] = len(self._tool_order)
                self._json[position] = []
            elif block.get("type") == "redacted_thinking":
                return [ThinkingDelta(index, position, "redacted_thinking", data=block.get("data"))]
            elif block.get("type") == "text" and block.get("text"):
                return [TextDelta(index, block["text"])]
            elif block.get("type") == "thinking" and block.get("thinking"):
                return [ThinkingDelta(index, position, "thinking", text=block["thinking"])]
            return []
        if kind == "content_block_delta":
            return self._delta(int(data["index"]), data.get("delta") or {})
        if kind == "content_block_stop":
            position = int(data["index"])
            block = self._blocks.get(position) or {}
            if block.get("type") != "tool_use":
                return []
            raw = "".join(self._json.pop(position, []))
            try:
                block["input"] = orjson.loads(raw) if raw else block.get("input") or {}
                arguments = _arguments(block["input"])
            except orjson.JSONDecodeError:
                # Input cut off (max_tokens): the v4 arguments keep exactly what was generated.
                arguments = raw
            return [
                ToolCallDelta(
                    index, self._tool_order[position], block.get("id"), block.get("name"), arguments
                )
            ]
        if kind == "message_delta":
            if self._message is None:
                raise ValueError("message_delta before message_start")
            self._message.update(data.get("delta") or {})
            self._usage.update(
                {k: v for k, v in (data.get("usage") or {}).items() if v is not None}
            )
            events: list[StreamEvent] = []
            usage = usage_from(self._usage)
            if usage is not None:
                events.append(UsageReport(usage, index))
            events.append(_finish(index, self._message.get("stop_reason")))
            return events
        if kind == "message_stop":
            self.stopped = True
        return []  # ping, and event types added after this was written

    def _delta(self, position: int, delta: dict[str, Any]) -> list[StreamEvent]:
        block = self._blocks.setdefault(position, {})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
            return [TextDelta(self._index, delta["text"])]
        if kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
            return [ThinkingDelta(self._index, position, "thinking", text=delta["thinking"])]
        if kind == "signature_delta":
            block["signature"] = delta["signature"]
            return [ThinkingDelta(self._index, position, "thinking", signature=delta["signature"])]
        if kind == "input_json_delta":
            self._json.setdefault(position, []).append(delta.get("partial_json") or "")
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
        return []

    def message(self) -> dict[str, Any]:
        message = dict(self._message or {})
        message["content"] = [block for _, block in sorted(self._blocks.items())]
        message["usage"] = self._usage
        return message


def stream_error(payload: dict[str, Any], origin: str) -> ProviderError:
    """An ``error`` event, with the status Anthropic uses for its type (502 when unknown)."""
    error = payload.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        kind = str(error["type"]) if error.get("type") else None
    else:
        message, kind = str(error), None
    status = ERROR_STATUS.get(kind or "", 502)
    return ProviderError(message, status=status, origin=origin, kind=kind or "provider_error")


# --- the wire -----------------------------------------------------------------------------------


class AnthropicMessagesWire:
    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        base_url = (call.base_url or spec.base_url or "").rstrip("/")
        headers = {"anthropic-version": API_VERSION}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        return Upstream(url=f"{base_url}/v1/messages", body=build_body(call, spec), headers=headers)

    def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        if call.num_samples == 1:
            return _sample(http, upstream, call, spec, 0)
        return merged_samples(
            lambda i: _sample(http, upstream, call, spec, i), call.num_samples, spec.origin
        )


async def _sample(
    http: aiohttp.ClientSession,
    upstream: Upstream,
    call: ChatCall,
    spec: ProviderSpec,
    index: int,
) -> AsyncGenerator[StreamEvent, None]:
    """One upstream call, whose events are those of sample ``index``."""
    if call.stream:
        async for event in _stream(http, upstream, spec, index):
            yield event
        return
    async with _http.post(
        http, upstream.url, upstream.body, upstream.headers, origin=spec.origin
    ) as response:
        raw = await response.read()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProviderError(
            f"{spec.origin} answered with a body that is not JSON", status=502, origin=spec.origin
        ) from None
    if payload.get("type") == "error":
        raise stream_error(payload, spec.origin)
    for event in events_from_message(payload, index):
        yield event


async def _stream(
    http: aiohttp.ClientSession, upstream: Upstream, spec: ProviderSpec, index: int
) -> AsyncGenerator[StreamEvent, None]:
    decoder = SSEDecoder()
    assembler = MessageAssembler(index)
    async with _http.post(
        http, upstream.url, upstream.body, upstream.headers, origin=spec.origin, stream=True
    ) as response:
        async for chunk in response.content.iter_any():
            for sse in decoder.feed(chunk):
                data = orjson.loads(sse.data)
                kind = sse.event if sse.event != "message" else str(data.get("type"))
                if kind == "error":
                    if assembler.started:
                        yield RawResponse(assembler.message())
                    yield StreamFailed(stream_error(data, spec.origin))
                    return
                for event in assembler.feed(kind, data):
                    yield event
            if assembler.stopped:
                break
        if not assembler.stopped:
            for sse in decoder.close():
                data = orjson.loads(sse.data)
                kind = sse.event if sse.event != "message" else str(data.get("type"))
                for event in assembler.feed(kind, data):
                    yield event
    if assembler.started:
        yield RawResponse(assembler.message())
    if not assembler.stopped:
        yield StreamFailed(
            ProviderConnectionError(
                f"{spec.origin} ended the stream before the message finished", origin=spec.origin
            )
        )
