"""A fake Cohere Chat v2 server speaking the real wire format (``POST /v2/chat``).

It runs on 127.0.0.1 in its own thread and event loop (``url`` is the base URL, as ``CO_API_URL``
takes it: without ``/v2``), records every request (path, headers, JSON body) and answers
deterministically:

* without ``Authorization: Bearer ...`` a 401 in Cohere's error shape ``{"id", "message"}``;
* default reply: ``Echo: <last user text>``, ``finish_reason: COMPLETE``; with ``thinking``
  enabled a ``thinking`` content item comes first; when the request has tools and
  ``tool_choice`` is ``REQUIRED``, a ``tool_plan`` and one call of the first tool with arguments
  ``{"q": <last user text>}``, ``finish_reason: TOOL_CALL``. Usage counts whitespace words, in
  both ``tokens`` and ``billed_units``. Response ids are ``fake-<n>`` for the n-th request since
  the last reset;
* streamed requests get the same response as Cohere streams it (:func:`sse_pieces`): events
  message-start, content-start / content-delta / content-end per content item, tool-plan-delta,
  tool-call-start / tool-call-delta / tool-call-end per call, message-end;
* scripted answers queued with :meth:`FakeCohere.enqueue` (status + JSON body, raw bytes, or SSE
  byte pieces) win over the default.
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


def error_body(message: str) -> dict[str, Any]:
    return {"id": "5e4f8e9a-0000-4000-8000-000000000000", "message": message}


@dataclass
class FakeCohere:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    url: str = ""
    #: Seconds before each default answer (to observe concurrency).
    delay: float = 0.0
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
    ) -> None:
        self.script.append(Scripted(status, json_body, raw, delay, pieces))

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.delay = 0.0
        self.max_in_flight = 0

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> FakeCohere:
        def routes(app: web.Application) -> None:
            app.router.add_post("/v2/chat", self._handle)

        self._server = BackgroundServer(routes, "fake-cohere")
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
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                return web.json_response(error_body("no api key supplied"), status=401)
            if self.script:
                scripted = self.script.pop(0)
                if scripted.delay:
                    await asyncio.sleep(scripted.delay)
                if scripted.pieces is not None:
                    return await _stream(request, scripted.pieces)
                if scripted.raw is not None:
                    return web.Response(
                        status=scripted.status, body=scripted.raw, content_type="application/json"
                    )
                return web.json_response(scripted.json_body, status=scripted.status)
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = response(body, f"fake-{number}")
            if body.get("stream"):
                return await _stream(request, sse_pieces(answer))
            return web.json_response(answer)
        finally:
            self._in_flight -= 1


async def _stream(request: web.Request, pieces: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    for piece in pieces:
        await response.write(piece)
    await response.write_eof()
    return response


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(i.get("text", "") for i in content or [] if i.get("type") == "text")


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def response(body: dict[str, Any], response_id: str = "fake-1") -> dict[str, Any]:
    """The fake's default (non-streamed) response for a request body."""
    text = _last_user_text(body)
    message: dict[str, Any] = {"role": "assistant"}
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        content.append({"type": "thinking", "thinking": f"The user said {text}."})
    if body.get("tools") and body.get("tool_choice") == "REQUIRED":
        name = body["tools"][0]["function"]["name"]
        message["tool_plan"] = f"I will call {name}."
        if content:
            message["content"] = content
        message["tool_calls"] = [
            {
                "id": f"{name}_fake0",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps({"q": text})},
            }
        ]
        finish = "TOOL_CALL"
        output = len(message["tool_plan"].split()) + 2
    else:
        content.append({"type": "text", "text": f"Echo: {text}"})
        message["content"] = content
        finish = "COMPLETE"
        output = sum(len(str(i.get("text") or i.get("thinking")).split()) for i in content)
    prompt = sum(len(_text(m.get("content")).split()) for m in body.get("messages", []))
    counts = {"input_tokens": prompt, "output_tokens": output}
    return {
        "id": response_id,
        "finish_reason": finish,
        "message": message,
        "usage": {"billed_units": dict(counts), "tokens": dict(counts)},
    }


def event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def sse_pieces(full: dict[str, Any]) -> list[bytes]:
    """A whole response as Cohere streams it: text and thinking word by word, the tool plan word
    by word, tool arguments in two halves."""
    message = full["message"]
    pieces = [
        event(
            {
                "id": full["id"],
                "type": "message-start",
                "delta": {
                    "message": {
                        "role": "assistant",
                        "content": [],
                        "tool_plan": "",
                        "tool_calls": [],
                        "citations": [],
                    }
                },
            }
        )
    ]
    for word in _words(message.get("tool_plan") or "") if message.get("tool_plan") else []:
        pieces.append(event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": word}}}))
    for index, item in enumerate(message.get("content") or []):
        key = "thinking" if item["type"] == "thinking" else "text"
        pieces.append(
            event(
                {
                    "type": "content-start",
                    "index": index,
                    "delta": {"message": {"content": {"type": item["type"], key: ""}}},
                }
            )
        )
        for word in _words(item[key]):
            pieces.append(
                event(
                    {
                        "type": "content-delta",
                        "index": index,
                        "delta": {"message": {"content": {key: word}}},
                    }
                )
            )
        pieces.append(event({"type": "content-end", "index": index}))
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        start = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        pieces.append(
            event(
                {
                    "type": "tool-call-start",
                    "index": index,
                    "delta": {"message": {"tool_calls": start}},
                }
            )
        )
        for part in (arguments[:half], arguments[half:]):
            pieces.append(
                event(
                    {
                        "type": "tool-call-delta",
                        "index": index,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}},
                    }
                )
            )
        pieces.append(event({"type": "tool-call-end", "index": index}))
    pieces.append(
        event(
            {
                "type": "message-end",
                "delta": {"finish_reason": full["finish_reason"], "usage": full["usage"]},
            }
        )
    )
    return pieces


if __name__ == "__main__":  # pragma: no cover - manual use
    fake = FakeCohere().start()
    print(fake.url, flush=True)
    threading.Event().wait()
