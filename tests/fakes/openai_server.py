"""A fake OpenAI Chat Completions server speaking the real wire format, for tests and bench.

It runs on 127.0.0.1 in its own thread and event loop, records every request it receives (path,
headers, JSON body), and answers deterministically:

* default reply per choice: ``Echo: <last user text>`` (choice ``i > 0`` appends `` #i``), with
  ``usage`` counted in whitespace words and OpenAI's ``prompt_tokens_details`` /
  ``completion_tokens_details``; setting :attr:`FakeOpenAI.cached_tokens` (a prompt-cache hit,
  part of ``prompt_tokens``) or :attr:`FakeOpenAI.reasoning_tokens` (hidden reasoning, part of
  ``completion_tokens``) makes the default answers report them, as a cached prompt or an
  o-series model does;
* when the request offers tools and ``tool_choice`` is ``required`` or names a function, a tool
  call whose arguments are ``{"q": <last user text>}``;
* scripted answers queued with :meth:`FakeOpenAI.enqueue` (status + JSON body, or raw bytes) win
  over the default.
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
    #: For a streamed request: the exact byte pieces to send, each after ``chunk_delay``.
    pieces: list[bytes] | None = None
    chunk_delay: float = 0.0
    #: Extra response headers (e.g. Retry-After).
    headers: dict[str, str] | None = None


@dataclass
class FakeOpenAI:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    url: str = ""

    #: Streams, and delayed answers, whose client went away before they were complete.
    disconnects: int = 0
    #: Streams that were written to the end.
    completed_streams: int = 0
    #: Bytes of stream body written so far (all streams).
    stream_bytes_written: int = 0
    #: Seconds between default stream chunks.
    chunk_delay: float = 0.0
    #: Prompt tokens the default answers report as served from OpenAI's prompt cache.
    cached_tokens: int = 0
    #: Reasoning tokens the default answers report (and add to ``completion_tokens``).
    reasoning_tokens: int = 0

    def enqueue(
        self,
        status: int = 200,
        json_body: Any = None,
        *,
        raw: bytes | None = None,
        delay: float = 0.0,
        pieces: list[bytes] | None = None,
        chunk_delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.script.append(Scripted(status, json_body, raw, delay, pieces, chunk_delay, headers))

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.disconnects = 0
        self.completed_streams = 0
        self.stream_bytes_written = 0
        self.chunk_delay = 0.0
        self.cached_tokens = 0
        self.reasoning_tokens = 0

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # --- server -------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        def routes(app: web.Application) -> None:
            app.router.add_post("/v1/chat/completions", self._handle)

        self._server = BackgroundServer(routes, "fake-openai")
        port = self._server.start()
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self) -> None:
        self._server.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        if self.script:
            scripted = self.script.pop(0)
            if scripted.delay and not await self._wait_unless_closed(request, scripted.delay):
                self.disconnects += 1
                return web.Response()
            if scripted.pieces is not None:
                return await self._stream(request, scripted.pieces, scripted.chunk_delay)
            if scripted.raw is not None:
                return web.Response(
                    status=scripted.status,
                    body=scripted.raw,
                    content_type="application/json",
                    headers=scripted.headers,
                )
            return web.json_response(
                scripted.json_body, status=scripted.status, headers=scripted.headers
            )
        hidden = {"cached_tokens": self.cached_tokens, "reasoning_tokens": self.reasoning_tokens}
        if body.get("stream"):
            return await self._stream(request, sse_pieces(body, **hidden), self.chunk_delay)
        return web.json_response(completion(body, **hidden))

    @staticmethod
    async def _wait_unless_closed(request: web.Request, seconds: float) -> bool:
        """Wait ``seconds``, like a slow provider; False as soon as the client hangs up."""
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if request.transport is None or request.transport.is_closing():
                return False
            await asyncio.sleep(0.02)
        return True

    async def _stream(
        self, request: web.Request, pieces: list[bytes], delay: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for piece in pieces:
                if delay:
                    await asyncio.sleep(delay)
                await response.write(piece)
                self.stream_bytes_written += len(piece)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        self.completed_streams += 1
        return response


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if p.get("type") == "text")
            return content or ""
    return ""


def completion(
    body: dict[str, Any], *, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> dict[str, Any]:
    """The fake's default chat.completion for a request body."""
    text = _last_user_text(body)
    choice = body.get("tool_choice")
    forced_tool = None
    if body.get("tools") and choice not in (None, "none", "auto"):
        forced_tool = (
            choice["function"]["name"]
            if isinstance(choice, dict)
            else body["tools"][0]["function"]["name"]
        )
    choices = []
    generated = 0
    for index in range(body.get("n", 1)):
        if forced_tool:
            arguments = json.dumps({"q": text})
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": f"call_{index}",
                        "type": "function",
                        "function": {"name": forced_tool, "arguments": arguments},
                    }
                ],
            }
            finish = "tool_calls"
            generated += len(arguments.split())
        else:
            reply = f"Echo: {text}" + (f" #{index}" if index else "")
            message = {"role": "assistant", "content": reply, "refusal": None}
            finish = "stop"
            generated += len(reply.split())
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
        )
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    # Both are parts of the totals on OpenAI's wire, never additions to them.
    assert cached_tokens <= prompt, "a cache hit cannot exceed the prompt"
    generated += reasoning_tokens
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1732700000,
        "model": body.get("model"),
        "system_fingerprint": "fp_fake",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": generated,
            "total_tokens": prompt + generated,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    fake = FakeOpenAI().start()
    print(fake.url, flush=True)
    threading.Event().wait()


def _chunk(body: dict[str, Any], choices: list[dict[str, Any]], usage: Any = None) -> bytes:
    payload: dict[str, Any] = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1732700000,
        "model": body.get("model"),
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }
    if (body.get("stream_options") or {}).get("include_usage"):
        payload["usage"] = usage
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def sse_pieces(
    body: dict[str, Any], *, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> list[bytes]:
    """The default completion as OpenAI streams it: a role chunk, content word by word (choices
    interleaved), tool-call arguments in two halves, finish chunks, a usage chunk, ``[DONE]``."""
    full = completion(body, cached_tokens=cached_tokens, reasoning_tokens=reasoning_tokens)
    pieces: list[bytes] = []
    for choice in full["choices"]:
        delta = {"role": "assistant", "content": "", "refusal": None}
        pieces.append(
            _chunk(
                body,
                [
                    {
                        "index": choice["index"],
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            )
        )
    per_choice: list[list[dict[str, Any]]] = []
    for choice in full["choices"]:
        message, deltas = choice["message"], []
        if message.get("content"):
            words = message["content"].split(" ")
            deltas += [
                {"content": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words)
            ]
        for n, call in enumerate(message.get("tool_calls") or []):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": n,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            deltas.append(
                {"tool_calls": [{"index": n, "function": {"arguments": arguments[:half]}}]}
            )
            deltas.append(
                {"tool_calls": [{"index": n, "function": {"arguments": arguments[half:]}}]}
            )
        per_choice.append(deltas)
    for round_ in range(max(len(d) for d in per_choice)):
        for index, deltas in enumerate(per_choice):
            if round_ < len(deltas):
                pieces.append(
                    _chunk(
                        body,
                        [
                            {
                                "index": index,
                                "delta": deltas[round_],
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    )
                )
    for choice in full["choices"]:
        pieces.append(
            _chunk(
                body,
                [
                    {
                        "index": choice["index"],
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": choice["finish_reason"],
                    }
                ],
            )
        )
    if (body.get("stream_options") or {}).get("include_usage"):
        pieces.append(_chunk(body, [], full["usage"]))
    pieces.append(b"data: [DONE]\n\n")
    return pieces
