"""The ``mock`` provider: deterministic, offline, needs no key.

Behaviour (documented in docs/compat.md, relied on by the README and the tests):

* The reply is ``You said: <text of the last user message>``; sample ``i > 0`` appends
  `` (sample i+1)``.
* ``response_format`` json_object / json_schema: the reply is ``{"reply": "<last user text>"}``.
* Tools: the model calls a tool when ``tool_choice`` is ``required`` or names a function, or when it
  is ``auto``/unset and the last user message mentions a tool's name. The call's arguments fill
  every string parameter with the last user text (numbers 0, booleans false); ids are
  ``call_mock_<sample>``. ``finish_reason`` is ``tool_call``.
* Tokens are whitespace-separated words. ``max_tokens`` (when not -1) truncates the reply to that
  many words with ``finish_reason: length``. Usage counts words of every message and the reply.
* The request and response are recorded in OpenAI's chat.completion shapes.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from chatgate.domain import ChatCall, Message
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.providers.openai_chat import build_body, events_from_completion
from chatgate.streaming import RawResponse, StreamEvent, TextDelta

_FILL: dict[str, Any] = {"number": 0, "integer": 0, "boolean": False}


def _last_user_text(messages: tuple[Message, ...]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text()
    return ""


def _words(text: str) -> int:
    return len(text.split())


def _chosen_tool(call: ChatCall, text: str) -> str | None:
    tools = call.config.tools
    choice = call.tool_choice
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return str((choice.get("function") or {}).get("name"))
    if choice == "required":
        return tools[0].name
    lowered = text.lower()
    return next((t.name for t in tools if t.name.lower() in lowered), None)


def _arguments(call: ChatCall, tool_name: str, text: str) -> str:
    tool = next((t for t in call.config.tools if t.name == tool_name), None)
    properties = ((tool.parameters or {}).get("properties") or {}) if tool else {}
    args = {
        name: text
        if (schema or {}).get("type", "string") == "string"
        else _FILL.get(schema.get("type"))
        for name, schema in properties.items()
    }
    return orjson.dumps(args).decode()


def _choice(call: ChatCall, index: int, text: str) -> tuple[dict[str, Any], int]:
    tool_name = _chosen_tool(call, text)
    if tool_name is not None:
        arguments = _arguments(call, tool_name, text)
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_mock_{index}",
                    "type": "function",
                    "function": {"name": tool_name, "arguments": arguments},
                }
            ],
        }
        return {"index": index, "message": message, "finish_reason": "tool_calls"}, _words(
            arguments
        )
    response_format = call.response_format or call.config.response_format
    if response_format and response_format.get("type") in ("json_object", "json_schema"):
        reply = orjson.dumps({"reply": text}).decode()
    else:
        reply = f"You said: {text}" + (f" (sample {index + 1})" if index else "")
    finish = "stop"
    limit = call.config.max_tokens
    words = reply.split(" ")
    if limit != -1 and _words(reply) > limit:
        reply = " ".join(words[: max(limit, 0)])
        finish = "length"
    return {
        "index": index,
        "message": {"role": "assistant", "content": reply},
        "finish_reason": finish,
    }, _words(reply)


def completion(call: ChatCall) -> dict[str, Any]:
    text = _last_user_text(call.messages)
    choices, generated = [], 0
    for index in range(call.num_samples):
        choice, tokens = _choice(call, index, text)
        choices.append(choice)
        generated += tokens
    prompt = sum(_words(m.text()) for m in call.messages)
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.config.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": generated,
            "total_tokens": prompt + generated,
        },
    }


class MockWire:
    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        return Upstream(url="mock://", body=build_body(call, spec), headers={})

    async def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        payload = completion(call)
        if not call.stream:
            for event in events_from_completion(payload):
                yield event
            return
        # Streamed: the same reply word by word, samples interleaved, then tool calls, finishes
        # and usage, exactly the events of the non-streamed call.
        yield RawResponse(payload)
        events = events_from_completion(payload)[1:]
        pieces = [
            [TextDelta(e.index, p) for p in re.findall(r"\S+\s*|\s+", e.text)]
            for e in events
            if isinstance(e, TextDelta)
        ]
        for round_ in itertools.zip_longest(*pieces):
            for piece in round_:
                if piece is not None:
                    yield piece
            await asyncio.sleep(0)
        for event in events:
            if not isinstance(event, TextDelta):
                yield event
