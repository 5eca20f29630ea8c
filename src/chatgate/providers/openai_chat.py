"""The OpenAI Chat Completions wire (``POST {base_url}/chat/completions``).

Spoken by OpenAI, Groq, DeepSeek and every OpenAI-compatible server an operator names
(Ollama, vLLM, llama.cpp, LM Studio).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from chatgate.domain import ChatCall, Message, Usage
from chatgate.errors import ProviderConnectionError, ProviderError
from chatgate.providers import _http
from chatgate.providers._sse import SSEDecoder
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.providers.profiles import uses_max_completion_tokens
from chatgate.streaming import (
    Finish,
    RawResponse,
    StreamEvent,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)

#: OpenAI finish reasons -> v4 (v4 documents stop, length and tool_call).
FINISH_REASONS: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "content_filter": "content_filter",
}

REASONING_EFFORTS = ("low", "medium", "high")

#: An integer thinking budget (Anthropic's form of reasoning_effort) as OpenAI's enum: the
#: smallest level whose budget covers it. The inverse of the budget tables of the providers that
#: take budgets (1024 / 8192 / 16384 tokens for low / medium / high; docs/providers.md).
BUDGET_LEVELS: tuple[tuple[int, str], ...] = ((1024, "low"), (8192, "medium"))


def effort_level(effort: str | int) -> str:
    if isinstance(effort, str):
        return effort
    return next((level for limit, level in BUDGET_LEVELS if effort <= limit), "high")


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if isinstance(message.content, list):
        out["content"] = [_content_part(p) for p in message.content]
    else:
        out["content"] = message.content
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [c.to_v4() for c in message.tool_calls]
    return out


def _content_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        image_out = {"url": image.get("url")}
        if image.get("detail"):
            image_out["detail"] = image["detail"]
        return {"type": "image_url", "image_url": image_out}
    return {"type": "text", "text": part.get("text", "")}


def build_body(call: ChatCall, spec: ProviderSpec) -> dict[str, Any]:
    config = call.config
    # `other` first: the v4 fields below are explicit and win over a duplicate in `other`.
    body: dict[str, Any] = dict(config.other)
    body.pop("n", None)  # the number of choices is num_samples, never `other`
    body["model"] = config.model
    body["messages"] = [_message(m) for m in call.messages]
    body["temperature"] = config.temperature
    body["top_p"] = config.top_p
    body["presence_penalty"] = config.presence_penalty
    body["frequency_penalty"] = config.frequency_penalty
    if config.max_tokens != -1:  # -1: no explicit limit, the provider's own maximum applies
        key = (
            "max_completion_tokens"
            if uses_max_completion_tokens(spec.name, config.model)
            else "max_tokens"
        )
        body[key] = config.max_tokens
    if config.stop is not None:
        body["stop"] = config.stop
    if call.num_samples != 1:
        body["n"] = call.num_samples
    if config.seed is not None:
        body["seed"] = config.seed
    if call.user is not None:
        body["user"] = call.user
    if config.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    k: v
                    for k, v in (
                        ("name", tool.name),
                        ("description", tool.description),
                        ("parameters", tool.parameters),
                        ("strict", tool.strict),
                    )
                    if v is not None
                },
            }
            for tool in config.tools
        ]
        if call.tool_choice is not None:
            body["tool_choice"] = call.tool_choice
    response_format = call.response_format or config.response_format
    if response_format is not None:
        body["response_format"] = response_format
    effort = config.reasoning_effort
    if effort is not None:
        body["reasoning_effort"] = effort_level(effort)
    if call.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def usage_from(payload: dict[str, Any] | None) -> Usage | None:
    """``prompt_tokens`` counts cached tokens too; the cache hits are in
    ``prompt_tokens_details.cached_tokens`` (OpenAI, Azure, Groq) or, on DeepSeek,
    ``prompt_cache_hit_tokens``. This API reports no cache writes."""
    if not payload:
        return None
    completion = payload.get("completion_tokens_details") or {}
    cached = payload.get("prompt_cache_hit_tokens")
    if cached is None:
        cached = (payload.get("prompt_tokens_details") or {}).get("cached_tokens")
    return Usage(
        prompt_tokens=int(payload.get("prompt_tokens") or 0),
        generation_tokens=int(payload.get("completion_tokens") or 0),
        reasoning_tokens=_count(completion.get("reasoning_tokens")),
        cache_read_tokens=_count(cached),
    )


def _count(value: Any) -> int | None:
    return int(value) if value is not None else None


def events_from_completion(payload: dict[str, Any]) -> list[StreamEvent]:
    """A whole (non-streamed) chat.completion as the same events a stream would produce."""
    events: list[StreamEvent] = [RawResponse(payload)]
    for choice in payload.get("choices") or []:
        index = int(choice.get("index", 0))
        message = choice.get("message") or {}
        content = message.get("content")
        if content:
            events.append(TextDelta(index, content))
        for call_index, tool_call in enumerate(message.get("tool_calls") or []):
            function = tool_call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index,
                    call_index,
                    tool_call.get("id"),
                    function.get("name"),
                    function.get("arguments") or "",
                )
            )
        legacy = message.get("function_call")
        if legacy and not message.get("tool_calls"):
            events.append(
                ToolCallDelta(index, 0, None, legacy.get("name"), legacy.get("arguments") or "")
            )
        reason = choice.get("finish_reason")
        events.append(Finish(index, FINISH_REASONS.get(reason, reason) if reason else None))
    usage = usage_from(payload.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage))
    return events


class StreamAssembler:
    """Translates chat.completion.chunk objects into events, and rebuilds the chat.completion that
    the same call made without streaming would have returned (the log's provider_response)."""

    def __init__(self) -> None:
        self._top: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None

    def events(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        for key, value in chunk.items():
            if key not in ("choices", "usage", "object") and key not in self._top:
                self._top[key] = value
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            state = self._choices.setdefault(
                index,
                {
                    "content": [],
                    "refusal": None,
                    "tool_calls": {},
                    "finish_reason": None,
                    "logprobs": "logprobs" in choice,
                },
            )
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                state["content"].append(content)
                events.append(TextDelta(index, content))
            if "refusal" in delta:
                state["refusal"] = (state["refusal"] or "") + (delta["refusal"] or "") or None
            for tool_call in delta.get("tool_calls") or []:
                call_index = int(tool_call.get("index", 0))
                function = tool_call.get("function") or {}
                slot = state["tool_calls"].setdefault(
                    call_index, {"id": None, "name": "", "arguments": []}
                )
                if tool_call.get("id"):
                    slot["id"] = tool_call["id"]
                if function.get("name"):
                    slot["name"] += function["name"]
                if function.get("arguments"):
                    slot["arguments"].append(function["arguments"])
                events.append(
                    ToolCallDelta(
                        index,
                        call_index,
                        tool_call.get("id"),
                        function.get("name"),
                        function.get("arguments") or "",
                    )
                )
            reason = choice.get("finish_reason")
            if reason:
                state["finish_reason"] = reason
                events.append(Finish(index, FINISH_REASONS.get(reason, reason)))
        if chunk.get("usage"):
            self._usage = chunk["usage"]
            usage = usage_from(self._usage)
            if usage is not None:
                events.append(UsageReport(usage))
        return events

    def completion(self) -> dict[str, Any]:
        choices = []
        for index, state in sorted(self._choices.items()):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(state["content"]) or None,
                "refusal": state["refusal"],
            }
            if state["tool_calls"]:
                message["tool_calls"] = [
                    {
                        "id": slot["id"],
                        "type": "function",
                        "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                    }
                    for _, slot in sorted(state["tool_calls"].items())
                ]
            choice: dict[str, Any] = {"index": index, "message": message}
            if state["logprobs"]:
                choice["logprobs"] = None
            choice["finish_reason"] = state["finish_reason"]
            choices.append(choice)
        completion = {"id": self._top.get("id"), "object": "chat.completion"}
        completion.update({k: v for k, v in self._top.items() if k != "id"})
        completion["choices"] = choices
        if self._usage is not None:
            completion["usage"] = self._usage
        return completion

    def unfinished(self, num_samples: int) -> list[int]:
        return [
            i
            for i in range(num_samples)
            if i not in self._choices or self._choices[i]["finish_reason"] is None
        ]


def _stream_error(payload: dict[str, Any], origin: str) -> ProviderError:
    error = payload.get("error")
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        kind = str(error["type"]) if error.get("type") else None
    else:
        message, kind = str(error), None
    return ProviderError(message, status=502, origin=origin, kind=kind or "provider_stream_error")


class OpenAIChatWire:
    def new_assembler(self) -> StreamAssembler:
        """The chunk assembler for one stream (vendors with extra chunk fields subclass it)."""
        return StreamAssembler()

    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        base_url = (call.base_url or spec.base_url or "").rstrip("/")
        headers = {"Authorization": f"Bearer {call.api_key}"} if call.api_key else {}
        return Upstream(
            url=f"{base_url}/chat/completions", body=build_body(call, spec), headers=headers
        )

    async def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        if call.stream:
            async for event in self._stream(http, upstream, call, spec):
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
                f"{spec.origin} answered with a body that is not JSON",
                status=502,
                origin=spec.origin,
            ) from None
        for event in events_from_completion(payload):
            yield event

    async def _stream(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        decoder = SSEDecoder()
        assembler = self.new_assembler()
        async with _http.post(
            http, upstream.url, upstream.body, upstream.headers, origin=spec.origin, stream=True
        ) as response:
            done = False
            async for chunk in response.content.iter_any():
                for sse in decoder.feed(chunk):
                    if sse.data == "[DONE]":
                        done = True
                        break
                    payload = orjson.loads(sse.data)
                    if isinstance(payload, dict) and "error" in payload:
                        yield RawResponse(assembler.completion())
                        yield StreamFailed(_stream_error(payload, spec.origin))
                        return
                    for event in assembler.events(payload):
                        yield event
                if done:
                    break
            if not done:
                for sse in decoder.close():
                    if sse.data != "[DONE]":
                        for event in assembler.events(orjson.loads(sse.data)):
                            yield event
        yield RawResponse(assembler.completion())
        unfinished = assembler.unfinished(call.num_samples)
        if unfinished:
            yield StreamFailed(
                ProviderConnectionError(
                    f"{spec.origin} ended the stream before sample {unfinished[0]} finished",
                    origin=spec.origin,
                )
            )
