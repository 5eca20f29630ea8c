"""Bedrock Converse answers as v4 events: whole responses and converse-stream events, usage,
finish reasons and errors, each by a table. Split from :mod:`bedrock_converse` (the request and
the wire), which imports what it needs from here.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.domain import Usage
from chatgate.errors import ProviderError
from chatgate.streaming import (
    Finish,
    RawResponse,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageReport,
)

#: Bedrock ``stopReason`` -> v4 finish reason; unknown values pass through.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

#: Bedrock exception name (``x-amzn-ErrorType`` or a stream's ``:exception-type``, first letter
#: upper-cased) -> (HTTP status Bedrock documents for it, v4 error type).
ERRORS: dict[str, tuple[int, str]] = {
    "ValidationException": (400, "invalid_request_error"),
    "SerializationException": (400, "invalid_request_error"),
    "UnrecognizedClientException": (403, "authentication_error"),
    "InvalidSignatureException": (403, "authentication_error"),
    "IncompleteSignatureException": (400, "authentication_error"),
    "ExpiredTokenException": (403, "authentication_error"),
    "AccessDeniedException": (403, "permission_error"),
    "ResourceNotFoundException": (404, "not_found_error"),
    "ModelTimeoutException": (408, "timeout_error"),
    "ModelErrorException": (424, "api_error"),
    "ModelStreamErrorException": (424, "api_error"),
    "ThrottlingException": (429, "rate_limit_error"),
    "ModelNotReadyException": (429, "overloaded_error"),
    "ServiceQuotaExceededException": (400, "rate_limit_error"),
    "InternalServerException": (500, "api_error"),
    "ServiceUnavailableException": (503, "overloaded_error"),
}


# --- response -----------------------------------------------------------------------------------


def usage_from(payload: dict[str, Any] | None) -> Usage | None:
    """``inputTokens`` leaves out the cache: v4 ``prompt_tokens`` is it plus the cache reads
    (``cacheReadInputTokens``) and writes (``cacheWriteInputTokens``), which are also kept apart.
    Converse reports no separate reasoning count."""
    if not payload:
        return None
    read = payload.get("cacheReadInputTokens")
    written = payload.get("cacheWriteInputTokens")
    return Usage(
        prompt_tokens=int(payload.get("inputTokens") or 0) + int(read or 0) + int(written or 0),
        generation_tokens=int(payload.get("outputTokens") or 0),
        cache_read_tokens=int(read) if read is not None else None,
        cache_write_tokens=int(written) if written is not None else None,
    )


def _arguments(tool_input: Any) -> str:
    return orjson.dumps(tool_input).decode()


def _finish(index: int, reason: str | None) -> Finish:
    return Finish(index, FINISH_REASONS.get(reason, reason) if reason else None)


def events_from_response(payload: dict[str, Any], index: int) -> list[StreamEvent]:
    """A whole Converse response as the same events its stream would produce."""
    events: list[StreamEvent] = [RawResponse(payload)]
    message = (payload.get("output") or {}).get("message") or {}
    call_index = 0
    for position, block in enumerate(message.get("content") or []):
        if "text" in block:
            if block["text"]:
                events.append(TextDelta(index, block["text"]))
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]
            if "redactedContent" in reasoning:
                events.append(
                    ThinkingDelta(
                        index, position, "redacted_thinking", data=reasoning["redactedContent"]
                    )
                )
            else:
                text = reasoning.get("reasoningText") or {}
                events.append(
                    ThinkingDelta(
                        index,
                        position,
                        "thinking",
                        text=text.get("text") or "",
                        signature=text.get("signature"),
                    )
                )
        elif "toolUse" in block:
            tool = block["toolUse"]
            events.append(
                ToolCallDelta(
                    index,
                    call_index,
                    tool.get("toolUseId"),
                    tool.get("name"),
                    _arguments(tool.get("input") or {}),
                )
            )
            call_index += 1
    usage = usage_from(payload.get("usage"))
    if usage is not None:
        events.append(UsageReport(usage, index))
    events.append(_finish(index, payload.get("stopReason")))
    return events


class ResponseAssembler:
    """Translates one ConverseStream into events and rebuilds the response the same call would
    have returned without streaming (the log's provider_response)."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._role: str | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._tool_order: dict[int, int] = {}
        self._response: dict[str, Any] = {}
        self.stopped = False

    @property
    def started(self) -> bool:
        return self._role is not None

    def feed(self, kind: str, data: dict[str, Any]) -> list[StreamEvent]:
        index = self._index
        if kind == "messageStart":
            self._role = str(data.get("role") or "assistant")
        elif kind == "contentBlockStart":
            position = int(data.get("contentBlockIndex") or 0)
            start = data.get("start") or {}
            if "toolUse" in start:
                self._blocks[position] = {"toolUse": dict(start["toolUse"])}
                self._tool_order[position] = len(self._tool_order)
                self._json[position] = []
        elif kind == "contentBlockDelta":
            return self._delta(int(data.get("contentBlockIndex") or 0), data.get("delta") or {})
        elif kind == "contentBlockStop":
            position = int(data.get("contentBlockIndex") or 0)
            block = self._blocks.get(position) or {}
            if "toolUse" not in block:
                return []
            tool = block["toolUse"]
            raw = "".join(self._json.pop(position, []))
            try:
                tool["input"] = orjson.loads(raw) if raw else {}
                arguments = _arguments(tool["input"])
            except orjson.JSONDecodeError:
                tool["input"] = raw  # cut off (maxTokens): keep exactly what was generated
                arguments = raw
            return [
                ToolCallDelta(
                    index,
                    self._tool_order[position],
                    tool.get("toolUseId"),
                    tool.get("name"),
                    arguments,
                )
            ]
        elif kind == "messageStop":
            self.stopped = True
            self._response["stopReason"] = data.get("stopReason")
            if "additionalModelResponseFields" in data:
                self._response["additionalModelResponseFields"] = data[
                    "additionalModelResponseFields"
                ]
            return [_finish(index, data.get("stopReason"))]
        elif kind == "metadata":
            for key in ("usage", "metrics", "trace", "performanceConfig", "serviceTier"):
                if key in data:
                    self._response[key] = data[key]
            usage = usage_from(data.get("usage"))
            return [UsageReport(usage, index)] if usage is not None else []
        return []

    def _delta(self, position: int, delta: dict[str, Any]) -> list[StreamEvent]:
        block = self._blocks.setdefault(position, {})
        if "text" in delta:
            block["text"] = block.get("text", "") + delta["text"]
            return [TextDelta(self._index, delta["text"])] if delta["text"] else []
        if "toolUse" in delta:
            self._json.setdefault(position, []).append(str(delta["toolUse"].get("input") or ""))
            return []
        if "reasoningContent" in delta:
            piece = delta["reasoningContent"]
            reasoning = block.setdefault("reasoningContent", {})
            if "redactedContent" in piece:
                reasoning["redactedContent"] = piece["redactedContent"]
                return [
                    ThinkingDelta(
                        self._index, position, "redacted_thinking", data=piece["redactedContent"]
                    )
                ]
            text = reasoning.setdefault("reasoningText", {"text": ""})
            if piece.get("text"):
                text["text"] += piece["text"]
                return [ThinkingDelta(self._index, position, "thinking", text=piece["text"])]
            if piece.get("signature"):
                text["signature"] = piece["signature"]
                return [
                    ThinkingDelta(self._index, position, "thinking", signature=piece["signature"])
                ]
        return []  # citations and delta kinds added after this was written

    def response(self) -> dict[str, Any]:
        content = [block for _, block in sorted(self._blocks.items()) if block]
        return {
            "output": {"message": {"role": self._role or "assistant", "content": content}},
            **self._response,
        }


def provider_error(
    kind: str | None, message: str, origin: str, status: int | None = None
) -> ProviderError:
    """A Bedrock exception as the v4 error: the HTTP status when there was one, else the status
    Bedrock documents for the exception (502 when unknown)."""
    name = (kind or "").split(":", 1)[0].strip()
    name = name[:1].upper() + name[1:]
    known_status, v4_type = ERRORS.get(name, (502, "provider_error"))
    return ProviderError(message, status=status or known_status, origin=origin, kind=v4_type)


def error_text(raw: bytes, status: int) -> str:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()[:2000] or f"HTTP {status}"
    if isinstance(parsed, dict):
        for key in ("message", "Message"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return raw.decode("utf-8", "replace")[:2000]
