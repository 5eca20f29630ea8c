"""A fake Azure OpenAI server: the OpenAI fake's answers on Azure's route, auth and annotations.

``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` with the ``api-key``
header (401 with Azure's error body without it; 404 ``DeploymentNotFound`` for a deployment
named ``missing``). Recorded paths include the query string. Default replies carry Azure's
``prompt_filter_results`` and per-choice ``content_filter_results``; a default stream opens with
Azure's filter-only chunk (empty ``id``/``model``, ``created: 0``, no choices). The reply's
``model`` is the model behind the deployment (``gpt-4o-2024-08-06``), not the deployment name.
Scripted answers (:meth:`enqueue`) win, as in the OpenAI fake.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aiohttp import web

from tests.fakes._serving import BackgroundServer
from tests.fakes.openai_server import FakeOpenAI, Recorded, completion, sse_pieces

MODEL = "gpt-4o-2024-08-06"
SAFE = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
PROMPT_FILTERS = [{"prompt_index": 0, "content_filter_results": SAFE}]


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def azure_completion(body: dict[str, Any]) -> dict[str, Any]:
    payload = completion({**body, "model": MODEL})
    payload["prompt_filter_results"] = copy.deepcopy(PROMPT_FILTERS)
    for choice in payload["choices"]:
        choice["content_filter_results"] = copy.deepcopy(SAFE)
    return payload


def azure_pieces(body: dict[str, Any]) -> list[bytes]:
    """OpenAI's stream of the same reply, with Azure's first chunk and filter annotations."""
    first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": PROMPT_FILTERS,
    }
    pieces = [b"data: " + json.dumps(first).encode() + b"\n\n"]
    for piece in sse_pieces({**body, "model": MODEL}):
        data = piece[len(b"data: ") :].strip()
        if data == b"[DONE]":
            pieces.append(piece)
            continue
        chunk = json.loads(data)
        for choice in chunk["choices"]:
            if choice["delta"].get("content") or choice.get("finish_reason"):
                choice["content_filter_results"] = SAFE
            else:
                choice["content_filter_results"] = {}
        pieces.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    return pieces


class FakeAzure(FakeOpenAI):
    def start(self) -> FakeAzure:
        def routes(app: web.Application) -> None:
            app.router.add_post(
                "/openai/deployments/{deployment}/chat/completions", self._handle_azure
            )

        self._server = BackgroundServer(routes, "fake-azure")
        port = self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _handle_azure(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(request.path_qs, dict(request.headers), body))
        if not request.headers.get("api-key"):
            return web.json_response(
                error_body(
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint. Make "
                    "sure to provide a valid key for an active subscription and use a correct "
                    "regional API endpoint for your resource.",
                ),
                status=401,
            )
        if self.script:
            scripted = self.script.pop(0)
            if scripted.pieces is not None:
                return await self._stream(request, scripted.pieces, scripted.chunk_delay)
            if scripted.raw is not None:
                return web.Response(
                    status=scripted.status, body=scripted.raw, content_type="application/json"
                )
            return web.json_response(scripted.json_body, status=scripted.status)
        if request.match_info["deployment"] == "missing":
            return web.json_response(
                error_body(
                    "DeploymentNotFound",
                    "The API deployment for this resource does not exist. If you created the "
                    "deployment within the last 5 minutes, please wait a moment and try again.",
                ),
                status=404,
            )
        if body.get("stream"):
            return await self._stream(request, azure_pieces(body), self.chunk_delay)
        return web.json_response(azure_completion(body))
