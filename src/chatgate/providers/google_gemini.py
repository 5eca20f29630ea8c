"""The Google Gemini wire (Generative Language API, ``v1beta``).

``POST {base}/v1beta/models/{model}:generateContent`` answers one ``GenerateContentResponse``;
``:streamGenerateContent?alt=sse`` answers server-sent events whose ``data:`` lines are each a
partial ``GenerateContentResponse``. The key travels only in the ``x-goog-api-key`` header, so it
is never part of the URL, the provider request or a log.

Both paths go through one :class:`ResponseAssembler`: a non-streamed response is fed to it as a
single chunk, so streamed and non-streamed calls produce the same events, and the assembler's
reassembled response is what the non-streamed call would have returned.

``num_samples > 1`` uses ``candidateCount`` for models documented to support it
(:data:`NATIVE_CANDIDATE_MODELS`); otherwise one concurrent call per sample, their events merged
(docs/providers.md, "Google Gemini").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from chatgate.domain import ChatCall, Message, Usage
from chatgate.errors import (
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
)
from chatgate.providers import _http
from chatgate.providers._samples import merged_samples
from chatgate.providers._sse import SSEDecoder
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

API_VERSION = "v1beta"

#: Gemini ``finishReason`` -> v4. ``STOP`` on a candidate with function calls is ``tool_call``.
#: Reasons not listed here are passed on lower-cased (e.g. ``malformed_function_call``).
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}

#: Google's canonical ``error.status`` -> the v4 error body's ``type``.
ERROR_TYPES: dict[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "CANCELLED": "provider_error",
    "INTERNAL": "api_error",
    "UNKNOWN": "api_error",
    "UNAVAILABLE": "overloaded_error",
    "DEADLINE_EXCEEDED": "timeout_error",
}

#: reasoning_effort -> ``thinkingBudget`` (the budgets Google's OpenAI-compatible endpoint uses).
THINKING_BUDGETS: dict[str, int] = {"low": 1024, "medium": 8192, "high": 24576}

#: Models that take ``thinkingLevel`` (low / medium / high) instead of a token budget.
THINKING_LEVEL_MODELS = ("gemini-3",)

#: Thinking-level models that take fewer levels (Gemini 3 Pro has no ``medium``): a v4 effort
#: they lack is refused rather than moved to a neighbouring level.
THINKING_LEVELS_BY_MODEL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gemini-3-pro", ("low", "high")),
)

#: Models documented to return several candidates for ``candidateCount``; others get one
#: concurrent call per sample.
NATIVE_CANDIDATE_MODELS = ("gemini-1.5-", "gemini-2.0-", "gemini-2.5-")

_V4_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


def _refuse(loc: tuple[str | int, ...], msg: str) -> InvalidRequest:
    return InvalidRequest.at(loc, f"provider 'google': {msg}", "value_error.provider_parameter")


def model_path(model: str) -> str:
    """The model as a URL path segment (``models/`` prefix tolerated, nothing else escapes)."""
    return quote(model.removeprefix("models/"), safe="-._~")


def native_candidates(model: str) -> bool:
    return model.removeprefix("models/").startswith(NATIVE_CANDIDATE_MODELS)


# --- request --------------------------------------------------------------------------------


def _image_part(url: str, loc: tuple[str | int, ...]) -> dict[str, Any]:
    if not url.startswith("data:"):
        # Fetching the URL here would let any caller make this server reach arbitrary addresses.
        raise _refuse(loc, "image URLs are not supported; send the image as a base64 data URL")
    header, comma, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not comma or encoding != "base64" or not mime:
        raise _refuse(loc, "an image data URL must be data:<mime type>;base64,<data>")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(loc, "the image data URL is not valid base64") from None
    return {"inlineData": {"mimeType": mime, "data": data}}


def _content_parts(message: Message, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    if message.content is None:
        return []
    if isinstance(message.content, str):
        return [{"text": message.content}] if message.content else []
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(message.content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            parts.append(_image_part(str(image.get("url") or ""), (*loc, "content", i)))
        else:
            raise _refuse((*loc, "content", i), f"content parts of type '{kind}' are not supported")
    return parts


def _json_object(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _contents(
    messages: tuple[Message, ...],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction, contents): roles user/model, consecutive same-role turns merged."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        loc: tuple[str | int, ...] = ("body", "messages", i)
        if message.name is not None and message.role != "tool":
            raise _refuse((*loc, "name"), "Gemini has no per-message participant name")
        if message.role == "system":
            system.extend(_content_parts(message, loc))
            continue
        if message.role == "tool":
            name = call_names.get(message.tool_call_id or "") or message.name
            if not name:
                raise _refuse(
                    (*loc, "tool_call_id"),
                    "a tool message must answer a tool call of an earlier assistant message "
                    "(Gemini needs the function's name)",
                )
            result = _json_object(message.text())
            response = result if isinstance(result, dict) else {"output": result}
            role = "user"
            parts = [{"functionResponse": {"name": name, "response": response}}]
        elif message.role in ("user", "assistant"):
            role = "user" if message.role == "user" else "model"
            parts = _content_parts(message, loc)
            for j, tool_call in enumerate(message.tool_calls or ()):
                call_names[tool_call.id] = tool_call.name
                args = _json_object(tool_call.arguments) if tool_call.arguments else {}
                if not isinstance(args, dict):
                    raise _refuse(
                        (*loc, "tool_calls", j, "function", "arguments"),
                        "function call arguments must be a JSON object",
                    )
                parts.append({"functionCall": {"name": tool_call.name, "args": args}})
        else:
            raise _refuse((*loc, "role"), f"role '{message.role}' is not supported")
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ({"parts": system} if system else None), contents


def _tool_config(choice: Any) -> dict[str, Any]:
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "required":
        return {"mode": "ANY"}
    name = ((choice or {}).get("function") or {}).get("name")
    return {"mode": "ANY", "allowedFunctionNames": [name]}


def _thinking_config(effort: str | int, model: str) -> dict[str, Any]:
    if isinstance(effort, int):
        if effort == 0:
            return {"thinkingBudget": 0}
        return {"thinkingBudget": effort, "includeThoughts": True}
    if effort not in THINKING_BUDGETS:
        raise _refuse(("body", "reasoning_effort"), "reasoning_effort must be low, medium, high")
    name = model.removeprefix("models/")
    if name.startswith(THINKING_LEVEL_MODELS):
        for prefix, levels in THINKING_LEVELS_BY_MODEL:
            if name.startswith(prefix) and effort not in levels:
                raise _refuse(
                    ("body", "model_config", "reasoning_effort"),
                    f"{name} takes reasoning_effort {' or '.join(levels)}, not {effort}",
                )
        return {"thinkingLevel": effort, "includeThoughts": True}
    return {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": True}


def _generation_config(call: ChatCall) -> dict[str, Any]:
    config = call.config
    out: dict[str, Any] = {}
    # v4 defaults are not "asked for": Gemini's own defaults apply (its topP default is 0.95).
    if config.temperature != _V4_DEFAULTS["temperature"]:
        out["temperature"] = config.temperature
    if config.top_p != _V4_DEFAULTS["top_p"]:
        out["topP"] = config.top_p
    if config.max_tokens != -1:
        out["maxOutputTokens"] = config.max_tokens
    if config.stop is not None:
        out["stopSequences"] = [config.stop] if isinstance(config.stop, str) else list(config.stop)
    if call.num_samples > 1 and native_candidates(config.model):
        out["candidateCount"] = call.num_samples
    if config.seed is not None:
        out["seed"] = config.seed
    if config.presence_penalty != _V4_DEFAULTS["presence_penalty"]:
        out["presencePenalty"] = config.presence_penalty
    if config.frequency_penalty != _V4_DEFAULTS["frequency_penalty"]:
        out["frequencyPenalty"] = config.frequency_penalty
    response_format = call.response_format or config.response_format
    if response_format is not None:
        out["responseMimeType"] = "application/json"
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if schema is not None:
                out["responseJsonSchema"] = schema
    if config.reasoning_effort is not None:
        out["thinkingConfig"] = _thinking_config(config.reasoning_effort, config.model)
    return out


def build_body(call: ChatCall) -> dict[str, Any]:
    """The exact ``GenerateContentRequest``; ``other`` is merged in, explicit v4 fields win."""
    config = call.config
    system, contents = _contents(call.messages)
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    if config.tools:
        declarations = []
        for i, tool in enumerate(config.tools):
            if tool.strict:
                raise _refuse(
                    ("body", "model_config", "tools", i, "strict"), "Gemini has no strict mode"
                )
            declaration: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                declaration["description"] = tool.description
            if tool.parameters is not None:
                declaration["parameters"] = tool.parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
        if call.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _tool_config(call.tool_choice)}
    generation_config = _generation_config(call)
    if generation_config:
        body["generationConfig"] = generation_config
    merged: dict[str, Any] = {}
    for key, value in config.other.items():
        ours = body.get(key)
        if ours is None:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(ours, dict):
            merged[key] = {**value, **ours}  # nested settings merged, ours win
        else:
            merged[key] = ours
    body.update(merged)
    generation = body.get("generationConfig")
    if isinstance(generation, dict) and "candidateCount" not in generation_config:
        # The number of candidates is num_samples, never `other`.
        body["generationConfig"] = {k: v for k, v in generation.items() if k != "candidateCount"}
    return body


# --- response -------------------------------------------------------------------------------


def usage_from(metadata: dict[str, Any] | None) -> Usage | None:
    """promptTokenCount (+ toolUsePromptTokenCount) -> prompt; candidates + thoughts -> generation.

    ``cachedContentTokenCount`` (an implicit or explicit cache hit) is already part of
    ``promptTokenCount``; it becomes the cache reads. Caches are written by a separate API
    (``cachedContents``), so a generation never reports cache writes. A count Gemini leaves out
    of ``usageMetadata`` is "not reported" (None), as for thoughts.
    """
    if not metadata:
        return None
    thoughts = metadata.get("thoughtsTokenCount")
    cached = metadata.get("cachedContentTokenCount")
    return Usage(
        prompt_tokens=int(metadata.get("promptTokenCount") or 0)
        + int(metadata.get("toolUsePromptTokenCount") or 0),
        generation_tokens=int(metadata.get("candidatesTokenCount") or 0) + int(thoughts or 0),
        reasoning_tokens=int(thoughts) if thoughts is not None else None,
        cache_read_tokens=int(cached) if cached is not None else None,
    )


def finish_reason(reason: str, has_function_calls: bool) -> str:
    if reason == "STOP" and has_function_calls:
        return "tool_call"
    return FINISH_REASONS.get(reason, reason.lower())


class _Candidate:
    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.function_calls = 0
        self.thinking_block = -1
        self.in_thought = False
        self.finish: str | None = None


class ResponseAssembler:
    """Translates GenerateContentResponse chunks into events and reassembles the whole response.

    ``sample`` relabels candidate 0 for one call of several concurrent ones (one per sample);
    ``per_sample_usage`` then reports the call's usage as that sample's.
    """

    def __init__(self, *, sample: int | None = None) -> None:
        self._sample = sample
        self._top: dict[str, Any] = {}
        self._candidates: dict[int, _Candidate] = {}
        self._usage: dict[str, Any] | None = None

    def _index(self, index: int) -> int:
        return index if self._sample is None else self._sample + index

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        for key, value in chunk.items():
            if key not in ("candidates", "usageMetadata"):
                self._top[key] = value
        if chunk.get("usageMetadata"):
            self._usage = chunk["usageMetadata"]
        events: list[StreamEvent] = []
        for position, candidate in enumerate(chunk.get("candidates") or []):
            index = int(candidate.get("index", position))
            state = self._candidates.setdefault(index, _Candidate())
            for key, value in candidate.items():
                if key not in ("content", "finishReason"):
                    state.extra[key] = value
            content = candidate.get("content") or {}
            if "role" in content:
                state.extra["_role"] = content["role"]
            for part in content.get("parts") or []:
                events.extend(self._part(index, state, part))
            reason = candidate.get("finishReason")
            if reason:
                state.finish = reason
                reason_v4 = finish_reason(reason, state.function_calls > 0)
                events.append(Finish(self._index(index), reason_v4))
        return events

    def _part(self, index: int, state: _Candidate, part: dict[str, Any]) -> list[StreamEvent]:
        sample = self._index(index)
        if "functionCall" in part:
            call = part["functionCall"]
            state.parts.append(dict(part))
            n = state.function_calls
            state.function_calls += 1
            state.in_thought = False
            call_id = call.get("id") or self._call_id(index, n)
            arguments = orjson.dumps(call.get("args") or {}).decode()
            return [ToolCallDelta(sample, n, call_id, call.get("name"), arguments)]
        if "text" not in part:
            state.parts.append(dict(part))  # inlineData, executableCode ...: kept in the log only
            return []
        thought = bool(part.get("thought"))
        last = state.parts[-1] if state.parts else None
        if last is not None and "text" in last and bool(last.get("thought")) == thought:
            last["text"] += part["text"]
            for key, value in part.items():
                if key != "text":
                    last[key] = value
        else:
            state.parts.append(dict(part))
        if not thought:
            state.in_thought = False
            return [TextDelta(sample, part["text"])] if part["text"] else []
        if not state.in_thought:
            state.thinking_block += 1
            state.in_thought = True
        return [
            ThinkingDelta(
                sample,
                state.thinking_block,
                text=part["text"],
                signature=part.get("thoughtSignature"),
            )
        ]

    def _call_id(self, index: int, n: int) -> str:
        """Gemini may omit function call ids: one derived from the response id, stable in the log."""
        response_id = self._top.get("responseId")
        return f"call_{response_id}_{index}_{n}" if response_id else f"call_{index}_{n}"

    def close(self, num_candidates: int) -> list[StreamEvent]:
        """End-of-response events: a blocked prompt's finish, then the (last, cumulative) usage."""
        events: list[StreamEvent] = []
        feedback = self._top.get("promptFeedback") or {}
        if not self._candidates and feedback.get("blockReason"):
            events += [Finish(self._index(i), "content_filter") for i in range(num_candidates)]
        usage = usage_from(self._usage)
        if usage is not None:
            events.append(UsageReport(usage, self._sample))
        return events

    def unfinished(self, num_candidates: int) -> list[int]:
        if not self._candidates and (self._top.get("promptFeedback") or {}).get("blockReason"):
            return []
        return [
            self._index(i)
            for i in range(num_candidates)
            if i not in self._candidates or self._candidates[i].finish is None
        ]

    def response(self) -> dict[str, Any]:
        """The GenerateContentResponse the same call would have returned without streaming."""
        candidates = []
        for _, state in sorted(self._candidates.items()):
            extra = dict(state.extra)
            role = extra.pop("_role", "model")
            candidate: dict[str, Any] = {"content": {"parts": state.parts, "role": role}}
            if state.finish is not None:
                candidate["finishReason"] = state.finish
            candidate.update(extra)
            candidates.append(candidate)
        out: dict[str, Any] = {}
        if candidates:
            out["candidates"] = candidates
        if "promptFeedback" in self._top:
            out["promptFeedback"] = self._top["promptFeedback"]
        if self._usage is not None:
            out["usageMetadata"] = self._usage
        out.update({k: v for k, v in self._top.items() if k != "promptFeedback"})
        return out


# --- transport ------------------------------------------------------------------------------


def provider_error(payload: Any, status: int, origin: str) -> ProviderError:
    """Google's ``{"error": {"code", "message", "status"}}`` as the v4 error (type by table)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return ProviderError(str(payload)[:2000] or f"HTTP {status}", status=status, origin=origin)
    google_status = str(error.get("status") or "")
    return ProviderError(
        str(error.get("message") or google_status or f"HTTP {status}"),
        status=status,
        origin=origin,
        kind=ERROR_TYPES.get(google_status, "provider_error"),
    )


def _post(
    http: aiohttp.ClientSession, upstream: Upstream, origin: str, *, stream: bool
) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """The shared POST (retries, timeouts) with Google's own error body read here."""

    def parse_error(response: aiohttp.ClientResponse, raw: bytes) -> ProviderError:
        try:
            payload: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = raw.decode("utf-8", "replace").strip()
        return provider_error(payload, response.status, origin)

    return _http.post(
        http,
        upstream.url,
        upstream.body,
        upstream.headers,
        origin=origin,
        stream=stream,
        parse_error=parse_error,
    )


class GeminiWire:
    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        base_url = (call.base_url or spec.base_url or "").rstrip("/")
        action = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        url = f"{base_url}/{API_VERSION}/models/{model_path(call.config.model)}:{action}"
        headers = {"x-goog-api-key": call.api_key} if call.api_key else {}
        return Upstream(url=url, body=build_body(call), headers=headers)

    def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        if call.num_samples > 1 and not native_candidates(call.config.model):
            return self._concurrent(http, upstream, call, spec)
        return self._one(http, upstream, call, spec, None)

    async def _one(
        self,
        http: aiohttp.ClientSession,
        upstream: Upstream,
        call: ChatCall,
        spec: ProviderSpec,
        sample: int | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """One upstream call; ``sample`` set: it is that sample's call of several."""
        assembler = ResponseAssembler(sample=sample)
        candidates = 1 if sample is not None else call.num_samples
        if not call.stream:
            async with _post(http, upstream, spec.origin, stream=False) as response:
                raw = await response.read()
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise ProviderError(
                    f"{spec.origin} answered with a body that is not JSON",
                    status=502,
                    origin=spec.origin,
                ) from None
            yield RawResponse(payload)
            for event in assembler.feed(payload):
                yield event
            for event in assembler.close(candidates):
                yield event
            return
        decoder = SSEDecoder()
        async with _post(http, upstream, spec.origin, stream=True) as response:
            async for chunk in response.content.iter_any():
                for sse in decoder.feed(chunk):
                    payload = orjson.loads(sse.data)
                    if isinstance(payload, dict) and "error" in payload:
                        yield RawResponse(assembler.response())
                        code = (payload.get("error") or {}).get("code")
                        status = code if isinstance(code, int) and 400 <= code <= 599 else 502
                        failure = provider_error(payload, status, spec.origin)
                        yield StreamFailed(failure)
                        return
                    for event in assembler.feed(payload):
                        yield event
            for sse in decoder.close():
                for event in assembler.feed(orjson.loads(sse.data)):
                    yield event
        for event in assembler.close(candidates):
            yield event
        yield RawResponse(assembler.response())
        unfinished = assembler.unfinished(candidates)
        if unfinished:
            yield StreamFailed(
                ProviderConnectionError(
                    f"{spec.origin} ended the stream before sample {unfinished[0]} finished",
                    origin=spec.origin,
                )
            )

    def _concurrent(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        """One call per sample (models without ``candidateCount``), merged as they come."""
        single = replace(call, num_samples=1)
        return merged_samples(
            lambda index: self._one(http, upstream, single, spec, index),
            call.num_samples,
            spec.origin,
        )
