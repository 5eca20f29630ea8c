"""A fake Gemini (Generative Language API v1beta) server speaking the real wire format.

Routes: ``POST /v1beta/models/{model}:generateContent`` and
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``. It records every request (path,
query, headers, JSON body) and answers deterministically:

* default reply per candidate (``generationConfig.candidateCount``): ``Echo: <last user text>``
  (candidate ``i > 0`` appends `` #i``), usage counted in whitespace words;
* with ``thinkingConfig.includeThoughts``: a thought part ``Thinking about <text>`` first;
* with tools and ``functionCallingConfig.mode == "ANY"``: a ``functionCall`` of the first allowed
  (or declared) function with ``args {"q": <last user text>}`` and no id (as Gemini does);
* a missing key header is a 403 ``PERMISSION_DENIED`` in Google's error shape;
* scripted answers (:meth:`FakeGemini.enqueue`: status + JSON body, or SSE ``pieces``) win.

Streams are the default response cut into chunks: text word by word (candidates interleaved),
function calls whole, ``finishReason`` on each candidate's last chunk, ``usageMetadata`` on every
chunk (complete on the last), ``modelVersion`` and ``responseId`` on every chunk.
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
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Scripted:
    status: int = 200
    json_body: Any = None
    pieces: list[bytes] | None = None
    chunk_delay: float = 0.0


@dataclass
class FakeGemini:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    url: str = ""

    def enqueue(
        self,
        status: int = 200,
        json_body: Any = None,
        *,
        pieces: list[bytes] | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        self.script.append(Scripted(status, json_body, pieces, chunk_delay))

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> FakeGemini:
        def routes(app: web.Application) -> None:
            app.router.add_post("/v1beta/models/{target}", self._handle)

        self._server = BackgroundServer(routes, "fake-gemini")
        port = self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(
            Recorded(request.path, dict(request.query), dict(request.headers), body)
        )
        model, _, action = request.match_info["target"].partition(":")
        if self.script:
            scripted = self.script.pop(0)
            if scripted.pieces is not None:
                return await self._stream(request, scripted.pieces, scripted.chunk_delay)
            return web.json_response(scripted.json_body, status=scripted.status)
        if not request.headers.get("x-goog-api-key"):
            return web.json_response(
                error_body(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED"),
                status=403,
            )
        if action == "streamGenerateContent":
            return await self._stream(request, sse_pieces(body, model), 0.0)
        return web.json_response(generate(body, model))

    async def _stream(
        self, request: web.Request, pieces: list[bytes], delay: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in pieces:
            if delay:
                await asyncio.sleep(delay)
            await response.write(piece)
        await response.write_eof()
        return response


def error_body(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents", [])):
        texts = [p["text"] for p in content.get("parts", []) if "text" in p]
        if content.get("role") == "user" and texts:
            return "".join(texts)
    return ""


def _forced_function(body: dict[str, Any]) -> str | None:
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if not body.get("tools") or config.get("mode") != "ANY":
        return None
    allowed = config.get("allowedFunctionNames")
    name: str = allowed[0] if allowed else body["tools"][0]["functionDeclarations"][0]["name"]
    return name


def generate(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The fake's default (non-streamed) GenerateContentResponse for a request body."""
    text = _last_user_text(body)
    generation = body.get("generationConfig") or {}
    thinking = (generation.get("thinkingConfig") or {}).get("includeThoughts")
    forced = _forced_function(body)
    candidates, generated, thoughts = [], 0, 0
    for index in range(generation.get("candidateCount", 1)):
        parts: list[dict[str, Any]] = []
        if thinking:
            thought = f"Thinking about {text}"
            parts.append({"text": thought, "thought": True})
            thoughts += len(thought.split())
        if forced:
            parts.append({"functionCall": {"name": forced, "args": {"q": text}}})
            generated += 2
        else:
            reply = f"Echo: {text}" + (f" #{index}" if index else "")
            parts.append({"text": reply})
            generated += len(reply.split())
        candidates.append(
            {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": index}
        )
    prompt = sum(
        len(p.get("text", "").split())
        for c in [*body.get("contents", []), body.get("systemInstruction") or {}]
        for p in c.get("parts", [])
    )
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": generated,
        "totalTokenCount": prompt + generated + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fakeResp01",
    }


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"


def sse_pieces(body: dict[str, Any], model: str) -> list[bytes]:
    """The default response as Gemini streams it (see the module docstring)."""
    full = generate(body, model)
    usage = full["usageMetadata"]
    early_usage = {
        "promptTokenCount": usage["promptTokenCount"],
        "totalTokenCount": usage["promptTokenCount"],
        "promptTokensDetails": usage["promptTokensDetails"],
    }
    per_candidate: list[list[dict[str, Any]]] = []
    for whole in full["candidates"]:
        pieces: list[dict[str, Any]] = []
        for part in whole["content"]["parts"]:
            if "text" in part:
                words = part["text"].split(" ")
                for i, word in enumerate(words):
                    piece = {**part, "text": word + (" " if i < len(words) - 1 else "")}
                    pieces.append(piece)
            else:
                pieces.append(part)
        per_candidate.append(pieces)
    payloads: list[dict[str, Any]] = []
    for round_ in range(max(len(p) for p in per_candidate)):
        for index, pieces in enumerate(per_candidate):
            if round_ >= len(pieces):
                continue
            candidate: dict[str, Any] = {"content": {"parts": [pieces[round_]], "role": "model"}}
            if round_ == len(pieces) - 1:
                candidate["finishReason"] = "STOP"
            candidate["index"] = index
            payloads.append(
                {
                    "candidates": [candidate],
                    "usageMetadata": early_usage,
                    "modelVersion": model,
                    "responseId": "fakeResp01",
                }
            )
    payloads[-1]["usageMetadata"] = usage
    chunks = [sse(p) for p in payloads]
    return chunks


if __name__ == "__main__":  # pragma: no cover - manual use
    fake = FakeGemini().start()
    print(fake.url, flush=True)
    threading.Event().wait()
