"""A fake OpenAI Chat Completions server speaking the real wire format, for tests and bench.

It runs on 127.0.0.1 in its own thread and event loop, records every request it receives (path,
headers, JSON body), and answers deterministically:

* default reply per choice: ``Echo: <last user text>`` (choice ``i > 0`` appends `` #i``), with
  ``usage`` counted in whitespace words;
* when the request offers tools and ``tool_choice`` is ``required`` or names a function, a tool
  call whose arguments are ``{"q": <last user text>}``;
* scripted answers queued with :meth:`FakeOpenAI.enqueue` (status + JSON body, or raw bytes) win
  over the default.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


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


@dataclass
class FakeOpenAI:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    url: str = ""

    def enqueue(
        self,
        status: int = 200,
        json_body: Any = None,
        *,
        raw: bytes | None = None,
        delay: float = 0.0,
    ) -> None:
        self.script.append(Scripted(status, json_body, raw, delay))

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # --- server -------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.SockSite(runner, sock)
            await site.start()
            self._runner = runner
            ready.set()

        def run() -> None:
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        if self.script:
            scripted = self.script.pop(0)
            if scripted.delay:
                await asyncio.sleep(scripted.delay)
            if scripted.raw is not None:
                return web.Response(
                    status=scripted.status, body=scripted.raw, content_type="application/json"
                )
            return web.json_response(scripted.json_body, status=scripted.status)
        return web.json_response(completion(body))


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if p.get("type") == "text")
            return content or ""
    return ""


def completion(body: dict[str, Any]) -> dict[str, Any]:
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
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    fake = FakeOpenAI().start()
    print(fake.url, flush=True)
    threading.Event().wait()
