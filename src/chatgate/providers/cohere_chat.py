"""The Cohere Chat v2 wire (``POST {base_url}/v2/chat``, ``Authorization: Bearer``).

Cohere v2 is close to OpenAI's shape (roles system/user/assistant/tool, ``tool_calls`` with JSON
string arguments, ``image_url`` parts) but differs where it matters: ``p`` instead of ``top_p``
(and at most 0.99), ``stop_sequences``, ``tool_choice`` only ``REQUIRED``/``NONE``, the text an
assistant writes before its tool calls travels as ``tool_plan``, reasoning is a ``thinking``
content item, usage comes as ``tokens`` and ``billed_units``, and streams are named events
(``message-start`` ... ``message-end``). Cohere has no ``n``: a call with ``num_samples > 1`` runs
one upstream call per sample, concurrently (:func:`merged_samples`, also used by the Replicate
wire). The field-by-field table is in docs/providers.md.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from chatgate.domain import ChatCall, Message, Usage
from chatgate.errors import InvalidRequest, ProviderConnectionError, ProviderError
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

#: Cohere ``finish_reason`` -> v4 finish reason. ``ERROR`` and ``TIMEOUT`` are failures, not
#: finishes: see :data:`FAILED_FINISH`. Unknown values pass through lower-cased.
FINISH_REASONS: dict[str, str] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_call",
}

#: Finish reasons that mean the generation failed: the v4 error's status and type.
FAILED_FINISH: dict[str, tuple[int, str]] = {
    "ERROR": (500, "api_error"),
    "TIMEOUT": (504, "timeout_error"),
}

#: Cohere answers errors as ``{"message": ...}`` (sometimes with an ``id``) and no type: the v4
#: ``type`` comes from the status, per the statuses Cohere's reference documents for /v2/chat.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    498: "authentication_error",  # Cohere's "invalid token"
    499: "client_closed_request",
    500: "api_error",
    501: "not_implemented_error",
    503: "overloaded_error",
    504: "timeout_error",
}

#: v4 tool_choice strings -> Cohere's; ``auto`` is Cohere's default (the field left out).
TOOL_CHOICES: dict[str, str | None] = {"none": "NONE", "auto": None, "required": "REQUIRED"}

#: v4 reasoning_effort words -> ``thinking.token_budget`` (Cohere takes only a budget).
THINKING_BUDGETS: dict[str, int] = {"low": 1024, "medium": 8192, "high": 16384}

SYSTEM_ROLES = frozenset({"system", "developer"})


_PARAMETER = "value_error.provider_parameter"

Loc = tuple[str | int, ...]


def _refuse(spec: ProviderSpec, loc: Loc, what: str) -> InvalidRequest:
    return InvalidRequest.at(loc, f"provider '{spec.name}' (Cohere Chat v2) {what}", _PARAMETER)


# --- request ------------------------------------------------------------------------------------


def _parts(
    content: str | list[dict[str, Any]] | None, loc: Loc, spec: ProviderSpec, *, images: bool
) -> str | list[dict[str, Any]]:
    """v4 content as Cohere content: a string stays a string, parts become Cohere items."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    items: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            items.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url" and images:
            image = part.get("image_url") or {}
            url = str(image.get("url") or "")
            if not url.startswith(("http://", "https://", "data:")):
                raise _refuse(
                    spec,
                    (*loc, "content", n, "image_url", "url"),
                    "takes images as http(s) URLs or base64 data URLs",
                )
            entry: dict[str, Any] = {"url": url}
            if image.get("detail") is not None:
                entry["detail"] = image["detail"]
            items.append({"type": "image_url", "image_url": entry})
        elif kind == "image_url":
            raise _refuse(spec, (*loc, "content", n), "takes images only in user messages")
        else:
            raise _refuse(spec, (*loc, "content", n, "type"), f"has no content part '{kind}'")
    return items


def _assistant(message: Message, loc: Loc, spec: ProviderSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    text = _parts(message.content, loc, spec, images=False)
    thinking = [
        {"type": "thinking", "thinking": block.get("thinking") or ""}
        for block in message.thinking or ()
        if block.get("type") == "thinking"
    ]
    if message.tool_calls:
        # Cohere's shape for "text, then tool calls": the text is the turn's tool_plan.
        plan = text if isinstance(text, str) else "".join(i["text"] for i in text)
        if plan:
            out["tool_plan"] = plan
        if thinking:
            out["content"] = thinking
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
        return out
    if thinking:
        items = [{"type": "text", "text": text}] if isinstance(text, str) and text else text
        out["content"] = [*thinking, *(items or [])]
    else:
        out["content"] = text
    return out


def _messages(messages: tuple[Message, ...], spec: ProviderSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        loc: Loc = ("body", "messages", i)
        role = message.role
        if message.name is not None and role != "tool":
            raise _refuse(spec, (*loc, "name"), "has no participant names on messages")
        if role in SYSTEM_ROLES:
            content = _parts(message.content, loc, spec, images=False)
            out.append({"role": "system", "content": content})
        elif role == "user":
            out.append({"role": "user", "content": _parts(message.content, loc, spec, images=True)})
        elif role == "assistant":
            out.append(_assistant(message, loc, spec))
        elif role == "tool":
            if not message.tool_call_id:
                raise _refuse(
                    spec, (*loc, "tool_call_id"), "needs the tool_call_id of a tool message"
                )
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "content": _parts(message.content, loc, spec, images=False),
                }
            )
        else:
            raise _refuse(spec, (*loc, "role"), f"has no message role '{role}'")
    return out


def _tools(call: ChatCall, spec: ProviderSpec) -> tuple[list[dict[str, Any]], bool]:
    """The tools, and whether strict tool schemas were asked for (all or none: Cohere's
    ``strict_tools`` applies to every tool of the request)."""
    tools, strict = [], [bool(tool.strict) for tool in call.config.tools]
    if any(strict) and not all(strict):
        n = strict.index(False)
        raise _refuse(
            spec,
            ("body", "model_config", "tools", n, "strict"),
            "makes tool schemas strict for all tools of a request or none (strict_tools)",
        )
    for tool in call.config.tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        tools.append({"type": "function", "function": function})
    return tools, all(strict) and bool(strict)


def _tool_choice(choice: Any, spec: ProviderSpec) -> str | None:
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        return TOOL_CHOICES[choice]
    raise _refuse(
        spec,
        ("body", "tool_choice"),
        "can only require some tool (REQUIRED) or none (NONE), not name the function to call",
    )


def _thinking(effort: str | int, spec: ProviderSpec) -> dict[str, Any]:
    if isinstance(effort, int):
        if effort == 0:
            return {"type": "disabled"}
        return {"type": "enabled", "token_budget": effort}
    if effort not in THINKING_BUDGETS:
        raise _refuse(
            spec,
            ("body", "reasoning_effort"),
            f"takes reasoning_effort as a token budget or one of {', '.join(THINKING_BUDGETS)}",
        )
    return {"type": "enabled", "token_budget": THINKING_BUDGETS[effort]}


def _response_format(call: ChatCall, spec: ProviderSpec) -> dict[str, Any] | None:
    response_format = call.response_format or call.config.response_format
    if response_format is None:
        return None
    loc: Loc = (
        ("body", "response_format")
        if call.response_format
        else ("body", "model_config", "response_format")
    )
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema is None:
            raise _refuse(spec, (*loc, "json_schema", "schema"), "needs json_schema.schema")
        return {"type": "json_object", "json_schema": schema}
    raise _refuse(spec, (*loc, "type"), f"has no response_format '{kind}'")


def build_body(call: ChatCall, spec: ProviderSpec) -> dict[str, Any]:
    config = call.config
    # `other` first: the v4 fields below are explicit and win over a duplicate in `other`.
    body: dict[str, Any] = dict(config.other)
    body.pop("stream", None)
    body["model"] = config.model
    body["messages"] = _messages(call.messages, spec)
    if config.tools:
        tools, strict = _tools(call, spec)
        body["tools"] = tools
        if strict:
            body["strict_tools"] = True
        if call.tool_choice is not None:
            choice = _tool_choice(call.tool_choice, spec)
            if choice is not None:
                body["tool_choice"] = choice
    if config.max_tokens != -1:
        body["max_tokens"] = config.max_tokens
    # Sent always, as the OpenAI wire does: v4's temperature (default 1) is what the log says the
    # call ran at, and Cohere's own default (0.3) differs.
    body["temperature"] = config.temperature
    # Cohere's `p` must lie in [0.01, 0.99]: v4's default 1 (no nucleus cut) is expressed by
    # leaving it out.
    if config.top_p != 1:
        body["p"] = config.top_p
    if config.stop:
        body["stop_sequences"] = [config.stop] if isinstance(config.stop, str) else config.stop
    if config.seed is not None:
        body["seed"] = config.seed
    if config.frequency_penalty != 0:
        body["frequency_penalty"] = config.frequency_penalty
    if config.presence_penalty != 0:
        body["presence_penalty"] = config.presence_penalty
    response_format = _response_format(call, spec)
    if response_format is not None:
        body["response_format"] = response_format
    if config.reasoning_effort is not None:
        body["thinking"] = _thinking(config.reasoning_effort, spec)
    body["stream"] = call.stream
    return body


# --- response -----------------------------------------------------------------------------------


def usage_from(payload: dict[str, Any] | None) -> Usage | None:
    """``tokens`` (what the model read and wrote, system preamble included) when present, else
    ``billed_units`` (what Cohere charges, which leaves out its own prompt scaffolding)."""
    if not payload:
        return None
    counts = payload.get("tokens") or payload.get("billed_units")
    if not counts:
        return None
    return Usage(
        prompt_tokens=int(counts.get("input_tokens") or 0),
        generation_tokens=int(counts.get("output_tokens") or 0),
    )


def failure(reason: str, message: str | None, origin: str) -> ProviderError | None:
    """The error of a generation that ended with ``ERROR``/``TIMEOUT``, else None."""
    if reason not in FAILED_FINISH:
        return None
    status, kind = FAILED_FINISH[reason]
    text = message or f"{origin} ended the generation with {reason}"
    return ProviderError(text, status=status, origin=origin, kind=kind)


def _closing(index: int, response: dict[str, Any], origin: str) -> list[StreamEvent]:
    """Usage, then the finish (or the failure) of a whole response."""
    events: list[StreamEvent] = []
    usage = usage_from(response.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage, index))
    reason = str(response.get("finish_reason") or "")
    failed = failure(reason, response.get("error"), origin)
    if failed is not None:
        events.append(StreamFailed(failed))
    else:
        events.append(Finish(index, FINISH_REASONS.get(reason, reason.lower() or None)))
    return events


def events_from_response(response: dict[str, Any], index: int, origin: str) -> list[StreamEvent]:
    """A whole (non-streamed) response as the same events its stream would produce."""
    events: list[StreamEvent] = [RawResponse(response)]
    message = response.get("message") or {}
    if message.get("tool_plan"):
        events.append(TextDelta(index, message["tool_plan"]))
    for position, item in enumerate(message.get("content") or []):
        if item.get("type") == "text" and item.get("text"):
            events.append(TextDelta(index, item["text"]))
        elif item.get("type") == "thinking":
            events.append(ThinkingDelta(index, position, text=item.get("thinking") or ""))
    for n, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        events.append(
            ToolCallDelta(
                index, n, call.get("id"), function.get("name"), function.get("arguments") or ""
            )
        )
    events += _closing(index, response, origin)
    return events


class ResponseAssembler:
    """Translates one v2 chat stream into events and rebuilds the response the same call would
    have returned without streaming (the log's provider_response)."""

    def __init__(self, index: int, origin: str) -> None:
        self._index = index
        self._origin = origin
        self._id: str | None = None
        self._role = "assistant"
        self._plan: list[str] = []
        self._content: dict[int, dict[str, Any]] = {}
        self._calls: dict[int, dict[str, Any]] = {}
        self._citations: list[Any] = []
        self._end: dict[str, Any] = {}
        self.started = False
        self.stopped = False

    def feed(self, data: dict[str, Any]) -> list[StreamEvent]:
        kind = data.get("type")
        delta = data.get("delta") or {}
        message = delta.get("message") or {}
        index = self._index
        if kind == "message-start":
            self.started = True
            self._id = data.get("id")
            self._role = message.get("role") or "assistant"
        elif kind == "content-start":
            item = dict(message.get("content") or {})
            self._content[int(data["index"])] = item
            return self._content_events(int(data["index"]), item)
        elif kind == "content-delta":
            piece = message.get("content") or {}
            item = self._content.setdefault(int(data["index"]), {"type": "text"})
            for key in ("text", "thinking"):
                if piece.get(key):
                    item[key] = item.get(key, "") + piece[key]
            return self._content_events(int(data["index"]), piece)
        elif kind == "tool-plan-delta":
            plan = message.get("tool_plan") or ""
            self._plan.append(plan)
            return [TextDelta(index, plan)] if plan else []
        elif kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            function = dict(call.get("function") or {})
            function.setdefault("arguments", "")
            n = int(data["index"])
            self._calls[n] = {**call, "function": function}
            return [
                ToolCallDelta(index, n, call.get("id"), function.get("name"), function["arguments"])
            ]
        elif kind == "tool-call-delta":
            n = int(data["index"])
            arguments = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if arguments:
                function = self._calls.setdefault(n, {"function": {"arguments": ""}})["function"]
                function["arguments"] = function.get("arguments", "") + arguments
                return [ToolCallDelta(index, n, arguments=arguments)]
        elif kind == "citation-start":
            citations = message.get("citations")
            if citations is not None:
                self._citations.append(citations)
        elif kind == "message-end":
            self.stopped = True
            self._end = delta
            return _closing(index, {**delta, "usage": delta.get("usage")}, self._origin)
        return []  # content-end, tool-call-end, citation-end, debug and later event types

    def _content_events(self, position: int, piece: dict[str, Any]) -> list[StreamEvent]:
        if piece.get("thinking") or piece.get("type") == "thinking":
            return [ThinkingDelta(self._index, position, text=piece.get("thinking") or "")]
        if piece.get("text"):
            return [TextDelta(self._index, piece["text"])]
        return []

    def response(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self._role}
        if self._plan:
            message["tool_plan"] = "".join(self._plan)
        if self._content:
            message["content"] = [item for _, item in sorted(self._content.items())]
        if self._calls:
            message["tool_calls"] = [call for _, call in sorted(self._calls.items())]
        if self._citations:
            message["citations"] = self._citations
        response: dict[str, Any] = {"id": self._id}
        if self._end.get("finish_reason") is not None:
            response["finish_reason"] = self._end["finish_reason"]
        response["message"] = message
        if self._end.get("usage") is not None:
            response["usage"] = self._end["usage"]
        return response


# --- transport ----------------------------------------------------------------------------------


@asynccontextmanager
async def post(
    http: aiohttp.ClientSession, upstream: Upstream, spec: ProviderSpec, *, stream: bool
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The shared POST, with Cohere's error type named by the status (its bodies carry none)."""
    try:
        async with _http.post(
            http, upstream.url, upstream.body, upstream.headers, origin=spec.origin, stream=stream
        ) as response:
            yield response
    except ProviderError as exc:
        if exc.type == ProviderError.type and exc.status in ERROR_TYPES:
            exc.type = ERROR_TYPES[exc.status]
        raise


def _json(raw: bytes, origin: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProviderError(
            f"{origin} answered with a body that is not JSON", status=502, origin=origin
        ) from None


async def _sample(
    http: aiohttp.ClientSession, upstream: Upstream, spec: ProviderSpec, index: int, stream: bool
) -> AsyncGenerator[StreamEvent, None]:
    """One upstream call, whose events are those of sample ``index``."""
    if not stream:
        async with post(http, upstream, spec, stream=False) as response:
            raw = await response.read()
        for event in events_from_response(_json(raw, spec.origin), index, spec.origin):
            yield event
        return
    decoder = SSEDecoder()
    assembler = ResponseAssembler(index, spec.origin)
    async with post(http, upstream, spec, stream=True) as response:
        async for chunk in response.content.iter_any():
            for sse in decoder.feed(chunk):
                for event in _stream_events(assembler, sse.data, spec.origin):
                    if isinstance(event, StreamFailed):
                        # The partial response is logged with the error.
                        if assembler.started:
                            yield RawResponse(assembler.response())
                        yield event
                        return
                    yield event
            if assembler.stopped:
                break
        if not assembler.stopped:
            for sse in decoder.close():
                for event in _stream_events(assembler, sse.data, spec.origin):
                    yield event
    if assembler.started:
        yield RawResponse(assembler.response())
    if not assembler.stopped:
        yield StreamFailed(
            ProviderConnectionError(
                f"{spec.origin} ended the stream before the message finished", origin=spec.origin
            )
        )


def _stream_events(assembler: ResponseAssembler, data: str, origin: str) -> list[StreamEvent]:
    if data.strip() == "[DONE]":
        return []
    payload = _json(data.encode(), origin)
    if isinstance(payload, dict) and "type" not in payload and "message" in payload:
        # An error body written into an already-open stream.
        message = str(payload["message"])
        return [StreamFailed(ProviderError(message, status=502, origin=origin))]
    return assembler.feed(payload)


# --- the wire -----------------------------------------------------------------------------------


class CohereChatWire:
    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        base_url = (call.base_url or spec.base_url or "").rstrip("/")
        headers = {"Authorization": f"Bearer {call.api_key}"} if call.api_key else {}
        return Upstream(url=f"{base_url}/v2/chat", body=build_body(call, spec), headers=headers)

    def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        def run(index: int) -> AsyncGenerator[StreamEvent, None]:
            return _sample(http, upstream, spec, index, call.stream)

        if call.num_samples == 1:
            return run(0)
        return merged_samples(run, call.num_samples, spec.origin)
