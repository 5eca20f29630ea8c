"""A fake Replicate predictions API speaking the real wire format.

It runs on 127.0.0.1 in its own thread and event loop (``url`` is the base URL, without ``/v1``)
and records every request (method, path, headers, JSON body). Routes:

* ``POST /v1/models/{owner}/{name}/predictions`` and ``POST /v1/predictions`` (with ``version``)
  create a prediction. Without ``Authorization: Bearer ...`` a 401 problem-details body
  (``{"title", "detail", "status"}``). With ``Prefer: wait`` the answer is the finished
  prediction (unless :attr:`FakeReplicate.polls` > 0: then it is still ``processing`` and
  ``urls.get`` must be polled that many times); without it, the prediction is ``starting``.
  ``urls.stream`` is given when the body asks for ``stream: true``;
* ``GET /v1/predictions/{id}`` the prediction as it stands;
* ``GET /v1/streams/{id}`` the prediction's SSE stream: one ``output`` event per token, then
  ``done`` (or scripted pieces from :meth:`FakeReplicate.enqueue_stream`).

The default output echoes the prompt: ``Echo: <prompt>`` as a list of tokens (one per word),
with ``metrics.input_token_count`` (prompt words) and ``output_token_count`` (tokens). Ids are
``fake<n>`` for the n-th prediction since the last reset. Scripted create answers
(:meth:`FakeReplicate.enqueue`) win over the default.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes._serving import BackgroundServer

CREATED_AT = "2025-03-01T12:00:00.000000Z"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int = 200
    json_body: Any = None


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"title": title, "detail": detail, "status": status}


def sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


@dataclass
class FakeReplicate:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    streams: list[list[bytes]] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    #: Polls of urls.get that still answer ``processing`` before the prediction finishes.
    polls: int = 0
    #: Seconds before each create answer (to observe concurrency).
    delay: float = 0.0
    max_in_flight: int = 0
    _in_flight: int = 0
    _pending: dict[str, int] = field(default_factory=dict)

    def enqueue(self, status: int = 200, json_body: Any = None) -> None:
        self.script.append(Scripted(status, json_body))

    def enqueue_stream(self, pieces: list[bytes]) -> None:
        self.streams.append(pieces)

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.streams.clear()
        self.predictions.clear()
        self._pending.clear()
        self.polls = 0
        self.delay = 0.0
        self.max_in_flight = 0

    def last_header(self, name: str) -> str | None:
        return self.requests[-1].headers.get(name)

    @property
    def created(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def start(self) -> FakeReplicate:
        def routes(app: web.Application) -> None:
            app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create)
            app.router.add_post("/v1/predictions", self._create)
            app.router.add_get("/v1/predictions/{id}", self._get)
            app.router.add_get("/v1/streams/{id}", self._stream)

        self._server = BackgroundServer(routes, "fake-replicate")
        port = self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return None
        return web.json_response(
            problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
            status=401,
        )

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(Recorded("POST", request.path, dict(request.headers), body))
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            refused = self._unauthorized(request)
            if refused is not None:
                return refused
            if self.script:
                scripted = self.script.pop(0)
                return web.json_response(scripted.json_body, status=scripted.status)
            if self.delay:
                await asyncio.sleep(self.delay)
            number = len(self.predictions) + 1
            model = (
                f"{request.match_info['owner']}/{request.match_info['name']}"
                if "owner" in request.match_info
                else "replicate/version-model"
            )
            full = prediction(body, f"fake{number}", model, self.url)
            self.predictions[full["id"]] = full
            self._pending[full["id"]] = self.polls
            waits = request.headers.get("Prefer", "").startswith("wait")
            if waits and not self.polls and not body.get("stream"):
                return web.json_response(full, status=201)
            status = "processing" if waits else "starting"
            return web.json_response(_unfinished(full, status), status=201)
        finally:
            self._in_flight -= 1

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("GET", request.path, dict(request.headers), None))
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        full = self.predictions.get(request.match_info["id"])
        if full is None:
            return web.json_response(problem(404, "Not found", "Not found"), status=404)
        if self._pending.get(full["id"], 0) > 0:
            self._pending[full["id"]] -= 1
            return web.json_response(_unfinished(full, "processing"))
        return web.json_response(full)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded("GET", request.path, dict(request.headers), None))
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        full = self.predictions.get(request.match_info["id"])
        if self.streams:
            pieces = self.streams.pop(0)
        else:
            pieces = [sse("output", token) for token in (full or {}).get("output") or []]
            pieces.append(sse("done", "{}"))
        self._pending.pop(request.match_info["id"], None)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        await response.write_eof()
        return response


def _unfinished(full: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        **full,
        "status": status,
        "output": None,
        "logs": "",
        "metrics": {},
        "completed_at": None,
        "started_at": None if status == "starting" else full["started_at"],
    }


def prediction(body: dict[str, Any], prediction_id: str, model: str, base: str) -> dict[str, Any]:
    """The fake's finished prediction for a create body."""
    prompt = str((body.get("input") or {}).get("prompt") or "")
    words = f"Echo: {prompt}".split(" ")
    tokens = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    urls = {
        "cancel": f"{base}/v1/predictions/{prediction_id}/cancel",
        "get": f"{base}/v1/predictions/{prediction_id}",
        "web": f"https://replicate.com/p/{prediction_id}",
    }
    if body.get("stream"):
        urls["stream"] = f"{base}/v1/streams/{prediction_id}"
    return {
        "id": prediction_id,
        "model": model,
        "version": body.get("version", "dp-8e1d7a0c2b4f4c5e9a7b6d3f2e1c0b9a"),
        "input": body.get("input"),
        "logs": "",
        "output": tokens,
        "data_removed": False,
        "error": None,
        "status": "succeeded",
        "created_at": CREATED_AT,
        "started_at": CREATED_AT,
        "completed_at": CREATED_AT,
        "urls": urls,
        "metrics": {
            "predict_time": 0.42,
            "total_time": 0.5,
            "input_token_count": len(prompt.split()),
            "output_token_count": len(tokens),
        },
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    fake = FakeReplicate().start()
    print(fake.url, json.dumps({"ready": True}), flush=True)
    threading.Event().wait()
