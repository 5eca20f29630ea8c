"""A fake AWS Bedrock Runtime speaking the real Converse wire (JSON and the binary event stream).

It runs on 127.0.0.1 in its own thread and event loop (``url`` is what
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` takes), records every request (raw path, decoded model id,
headers, JSON body) and answers deterministically:

* authentication as Bedrock checks it: ``Authorization: Bearer <API key>`` must be a known key;
  a SigV4 ``Authorization`` must name a known access key and carry the signature the fake
  recomputes from the request as received (raw path, Host, signed headers, body bytes), else a
  403 ``UnrecognizedClientException`` / ``InvalidSignatureException`` with the
  ``x-amzn-ErrorType`` header and a ``{"message"}`` body;
* default reply: ``Echo: <last user text>``, ``stopReason: end_turn``; a reasoning block first
  when ``additionalModelRequestFields.thinking`` is enabled; a ``toolUse`` block with input
  ``{"q": <last user text>}`` and ``stopReason: tool_use`` when ``toolConfig.toolChoice`` is
  ``any`` or ``tool``. Usage counts whitespace words;
* ``/converse-stream`` answers the same response as Bedrock streams it, framed in
  ``application/vnd.amazon.eventstream`` by this module's own encoder (:func:`frame`), with the
  ``p`` padding field Bedrock adds to event payloads;
* scripted answers queued with :meth:`FakeBedrock.enqueue` (status + JSON body + error type, or
  raw byte pieces) win over the default.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from chatgate.providers.aws_sigv4 import AwsCredentials, sign
from tests.fakes._serving import BackgroundServer

ACCESS_KEY = "AKIAFAKE0123456789AB"
SECRET_KEY = "fakeSecretKey/0123456789abcdefghijklmnopq"
SESSION_TOKEN = "FwoGZXIvYXdzEFAKEsessiontoken0123456789"
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1mYWtlLTAxMjM0NTY3ODk="
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


@dataclass
class Recorded:
    raw_path: str
    model: str
    operation: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw_body: bytes


@dataclass
class Scripted:
    status: int = 200
    json_body: Any = None
    error_type: str | None = None
    pieces: list[bytes] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0


def _crc(data: bytes) -> int:
    return binascii.crc32(data) & 0xFFFFFFFF


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    return (
        bytes([len(encoded_name)])
        + encoded_name
        + bytes([7])
        + struct.pack(">H", len(encoded_value))
        + encoded_value
    )


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message (string headers only, which is all Bedrock sends)."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", _crc(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", _crc(body))


def event(kind: str, data: dict[str, Any], padding: bool = True) -> bytes:
    payload = {**data, "p": PADDING[: 5 + len(kind)]} if padding else data
    return frame(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload).encode(),
    )


def exception(kind: str, message: str) -> bytes:
    return frame(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


def _last_user_text(body: dict[str, Any]) -> str:
    for turn in reversed(body.get("messages", [])):
        if turn.get("role") == "user":
            return "".join(b.get("text", "") for b in turn.get("content", []))
    return ""


def response(body: dict[str, Any]) -> dict[str, Any]:
    """The fake's default Converse response for a request body."""
    text = _last_user_text(body)
    content: list[dict[str, Any]] = []
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
    if thinking.get("type") == "enabled":
        content.append(
            {
                "reasoningContent": {
                    "reasoningText": {"text": f"The user said {text}.", "signature": "sig_fake=="}
                }
            }
        )
    tool_config = body.get("toolConfig") or {}
    choice = tool_config.get("toolChoice") or {}
    forced = None
    if tool_config.get("tools") and ("any" in choice or "tool" in choice):
        forced = (choice.get("tool") or {}).get("name") or tool_config["tools"][0]["toolSpec"][
            "name"
        ]
    if forced:
        content.append(
            {"toolUse": {"toolUseId": "tooluse_fake_0", "name": forced, "input": {"q": text}}}
        )
        stop_reason = "tool_use"
    else:
        content.append({"text": f"Echo: {text}"})
        stop_reason = "end_turn"
    output = 0
    for block in content:
        if "text" in block:
            output += len(block["text"].split())
        elif "toolUse" in block:
            output += len(json.dumps(block["toolUse"]["input"]).split())
        else:
            output += len(block["reasoningContent"]["reasoningText"]["text"].split())
    prompt = sum(
        len(b.get("text", "").split()) for t in body.get("messages", []) for b in t["content"]
    )
    prompt += sum(len(b.get("text", "").split()) for b in body.get("system", []))
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": prompt, "outputTokens": output, "totalTokens": prompt + output},
        "metrics": {"latencyMs": 42},
    }


def stream_pieces(full: dict[str, Any]) -> list[bytes]:
    """A whole response as ConverseStream sends it: text word by word, reasoning in two halves
    then its signature, tool input as partial JSON in two halves; messageStop, then metadata."""
    pieces = [event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(full["output"]["message"]["content"]):
        deltas: list[dict[str, Any]] = []
        if "text" in block:
            words = block["text"].split(" ")
            deltas = [
                {"text": w + (" " if i < len(words) - 1 else "")} for i, w in enumerate(words)
            ]
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            half = len(reasoning["text"]) // 2
            deltas = [
                {"reasoningContent": {"text": reasoning["text"][:half]}},
                {"reasoningContent": {"text": reasoning["text"][half:]}},
                {"reasoningContent": {"signature": reasoning["signature"]}},
            ]
        elif "toolUse" in block:
            tool = block["toolUse"]
            pieces.append(
                event(
                    "contentBlockStart",
                    {
                        "start": {
                            "toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}
                        },
                        "contentBlockIndex": index,
                    },
                )
            )
            raw = json.dumps(tool["input"])
            half = len(raw) // 2
            deltas = [{"toolUse": {"input": raw[:half]}}, {"toolUse": {"input": raw[half:]}}]
        for delta in deltas:
            pieces.append(event("contentBlockDelta", {"delta": delta, "contentBlockIndex": index}))
        pieces.append(event("contentBlockStop", {"contentBlockIndex": index}))
    pieces.append(event("messageStop", {"stopReason": full["stopReason"]}))
    pieces.append(event("metadata", {"usage": full["usage"], "metrics": full["metrics"]}))
    return pieces


def _expected_authorization(request_headers: dict[str, str], raw_path: str, raw: bytes) -> str:
    authorization = request_headers.get("Authorization", "")
    credential = authorization.split("Credential=", 1)[1].split(",", 1)[0]
    _, _date, region, service, _ = credential.split("/")
    signed_names = authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    lower = {k.lower(): v for k, v in request_headers.items()}
    to_sign = {
        name: lower.get(name, "")
        for name in signed_names
        if name not in ("host", "x-amz-date", "x-amz-security-token")
    }
    token = lower.get("x-amz-security-token")
    signed = sign(
        "POST",
        f"http://{lower['host']}{raw_path}",
        to_sign,
        raw,
        credentials=AwsCredentials(ACCESS_KEY, SECRET_KEY, token),
        region=region,
        service=service,
        now=datetime.strptime(lower["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    return signed.headers["Authorization"]


@dataclass
class FakeBedrock:
    requests: list[Recorded] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    url: str = ""
    delay: float = 0.0
    max_in_flight: int = 0
    _in_flight: int = 0

    def enqueue(
        self,
        status: int = 200,
        json_body: Any = None,
        *,
        error_type: str | None = None,
        pieces: list[bytes] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        self.script.append(Scripted(status, json_body, error_type, pieces, delay, chunk_delay))

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.delay = 0.0
        self.max_in_flight = 0

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def start(self) -> FakeBedrock:
        def routes(app: web.Application) -> None:
            app.router.add_post("/model/{model}/{operation}", self._handle)

        self._server = BackgroundServer(routes, "fake-bedrock")
        port = self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def _denied(self, headers: dict[str, str], raw_path: str, raw: bytes) -> web.Response | None:
        authorization = headers.get("Authorization", "")
        if authorization == f"Bearer {API_KEY}":
            return None
        if authorization.startswith("AWS4-HMAC-SHA256 Credential=" + ACCESS_KEY + "/"):
            if authorization == _expected_authorization(headers, raw_path, raw):
                return None
            return _error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            )
        return _error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        headers = dict(request.headers)
        operation = request.match_info["operation"]
        self.requests.append(
            Recorded(request.raw_path, request.match_info["model"], operation, headers, body, raw)
        )
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            denied = self._denied(headers, request.raw_path, raw)
            if denied is not None:
                return denied
            if self.script:
                scripted = self.script.pop(0)
                if scripted.delay:
                    await asyncio.sleep(scripted.delay)
                if scripted.pieces is not None:
                    return await _stream(request, scripted.pieces, scripted.chunk_delay)
                if scripted.error_type:
                    return _error(scripted.status, scripted.error_type, scripted.json_body)
                return web.json_response(scripted.json_body, status=scripted.status)
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = response(body)
            if operation == "converse-stream":
                return await _stream(request, stream_pieces(answer), 0.0)
            return web.json_response(answer)
        finally:
            self._in_flight -= 1


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": "00000000-fake-0000-0000-000000000000",
        },
    )


async def _stream(request: web.Request, pieces: list[bytes], delay: float) -> web.StreamResponse:
    response_ = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
    await response_.prepare(request)
    for piece in pieces:
        if delay:
            await asyncio.sleep(delay)
        await response_.write(piece)
    await response_.write_eof()
    return response_
