"""A fake Anthropic Messages server speaking the real wire format (API version 2023-06-01).

It runs on 127.0.0.1 in its own thread and event loop (``url`` is the base URL, as
``ANTHROPIC_BASE_URL`` takes it: without ``/v1``), records every request (path, headers, JSON
body) and answers deterministically:

* without ``x-api-key`` a 401 ``authentication_error``, without ``anthropic-version`` a 400
  ``invalid_request_error``, in Anthropic's error body shape;
* default reply: ``Echo: <last user text>``, ``stop_reason: end_turn``; with ``thinking`` enabled
  a signed thinking block comes first; when the request offers tools and ``tool_choice`` is
  ``any`` or names a tool, a ``tool_use`` block with input ``{"q": <last user text>}`` and
  ``stop_reason: tool_use``. Usage counts whitespace words. Message ids are ``msg_fake_<n>`` for
  the n-th request since the last reset;
* streamed requests get the same message as Anthropic streams it (:func:`sse_pieces`): named
  events message_start, content_block_start / ping / content_block_delta / content_block_stop per
  block, message_delta, message_stop;
* scripted answers queued with :meth:`FakeAnthropic.enqueue` (status + JSON body, raw bytes, or
  SSE byte pieces) win over the default.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes._serving import BackgroundServer


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Scripted:
    status: int = 200
    json_body: Any = None
    raw: bytes | None = None
    delay: float = 0.0
    pieces: list[bytes] | None = None
    chunk_delay: float = 0.0


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_fake0123456789",
    }


@dataclass
class FakeAnthropic:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    url: str = ""
    #: Seconds before each default answer (to observe concurrency).
    delay: float = 0.0
    #: Most requests seen in flight at once.
    max_in_flight: int = 0
    _in_flight: int = 0

    def enqueue(
        self,
        status: int = 200,
        json_body: Any = None,
        *,
        raw: bytes | None = None,
        delay: float = 0.0,
        pieces: list[bytes] | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        self.script.append(Scripted(status, json_body, raw, delay, pieces, chunk_delay))

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.delay = 0.0
        self.max_in_flight = 0

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> FakeAnthropic:
        def routes(app: web.Application) -> None:
            app.router.add_post("/v1/messages", self._handle)

        self._server = BackgroundServer(routes, "fake-anthropic")
        port = self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        number = len(self.requests)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if not request.headers.get("x-api-key"):
                return web.json_response(
                    error_body("authentication_error", "x-api-key header is required"), status=401
                )
            if not request.headers.get("anthropic-version"):
                return web.json_response(
                    error_body("invalid_request_error", "anthropic-version header is required"),
                    status=400,
                )
            if self.script:
                scripted = self.script.pop(0)
                if scripted.delay:
                    await asyncio.sleep(scripted.delay)
                if scripted.pieces is not None:
                    return await _stream(request, scripted.pieces, scripted.chunk_delay)
                if scripted.raw is not None:
                    return web.Response(
                        status=scripted.status, body=scripted.raw, content_type="application/json"
                    )
                return web.json_response(scripted.json_body, status=scripted.status)
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = message(body, f"msg_fake_{number}")
            if body.get("stream"):
                return await _stream(request, sse_pieces(answer), 0.0)
            return web.json_response(answer)
        finally:
            self._in_flight -= 1


async def _stream(request: web.Request, pieces: list[bytes], delay: float) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    for piece in pieces:
        if delay:
            await asyncio.sleep(delay)
        await response.write(piece)
    await response.write_eof()
    return response


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


def _last_user_text(body: dict[str, Any]) -> str:
    for turn in reversed(body.get("messages", [])):
        if turn.get("role") == "user":
            return _text(turn.get("content"))
    return ""


def message(body: dict[str, Any], message_id: str = "msg_fake_1") -> dict[str, Any]:
    """The fake's default Message for a request body."""
    text = _last_user_text(body)
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        content.append(
            {"type": "thinking", "thinking": f"The user said {text}.", "signature": "sig_fake=="}
        )
    choice = body.get("tool_choice") or {}
    forced = None
    if body.get("tools") and choice.get("type") in ("any", "tool"):
        forced = choice.get("name") or body["tools"][0]["name"]
    if forced:
        content.append(
            {"type": "tool_use", "id": "toolu_fake_0", "name": forced, "input": {"q": text}}
        )
        stop_reason = "tool_use"
    else:
        content.append({"type": "text", "text": f"Echo: {text}"})
        stop_reason = "end_turn"
    output = sum(
        len(str(b.get("text") or b.get("thinking") or b.get("input") or "").split())
        for b in content
    )
    prompt = sum(len(_text(t.get("content")).split()) for t in body.get("messages", []))
    prompt += len(_text(body.get("system")).split())
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
            "service_tier": "standard",
        },
    }


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def sse_pieces(full: dict[str, Any]) -> list[bytes]:
    """A whole Message as Anthropic streams it: text word by word, thinking in two halves then its
    signature, tool input as partial JSON (an empty first piece, then two halves)."""
    start = {**full, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**full["usage"], "output_tokens": 1}
    pieces = [event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(full["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            words = block["text"].split(" ")
            deltas = [
                {"type": "text_delta", "text": w + (" " if i < len(words) - 1 else "")}
                for i, w in enumerate(words)
            ]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": ""}
            half = len(block["thinking"]) // 2
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"][:half]},
                {"type": "thinking_delta", "thinking": block["thinking"][half:]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        elif kind == "tool_use":
            opening = {**block, "input": {}}
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in ("", raw[:half], raw[half:])
            ]
        else:
            opening = block
        pieces.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            pieces.append(event("ping", {"type": "ping"}))
        for delta in deltas:
            pieces.append(
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        pieces.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    pieces.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": full["stop_reason"],
                    "stop_sequence": full["stop_sequence"],
                },
                "usage": {"output_tokens": full["usage"]["output_tokens"]},
            },
        )
    )
    pieces.append(event("message_stop", {"type": "message_stop"}))
    return pieces


if __name__ == "__main__":  # pragma: no cover - manual use
    fake = FakeAnthropic().start()
    print(fake.url, flush=True)
    threading.Event().wait()
