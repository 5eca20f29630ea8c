"""A fast fake OpenAI-compatible provider for benchmarks.

A raw :class:`asyncio.Protocol` HTTP/1.1 server on uvloop: keep-alive, pipelining-safe, canned
answers prepared once at start-up. It exists so that the provider is never the bottleneck of a
benchmark (tens of thousands of requests per second on one core).

``POST /v1/chat/completions``

* without ``"stream": true``: a ``chat.completion`` JSON body with ``usage``;
* with ``"stream": true``: ``text/event-stream`` in chunked transfer encoding: a role chunk, a few
  content deltas, a finish chunk, a usage chunk when ``stream_options.include_usage`` is true,
  then ``data: [DONE]``. Each SSE frame is one HTTP chunk.

``GET`` on any path answers ``200 ok`` (a health check); anything else is a 404.

``--latency-ms`` delays the answer (and, for a stream, each further frame) by that many ms.

Only as much of the request is parsed as needed: the request line, ``Content-Length`` and the
body bytes, which are searched for ``"stream":true`` / ``"stream": true``.

    python -m bench.fake_provider --port 9100 [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any, cast

import uvloop

CHAT_PATH = b"/v1/chat/completions"
COMPLETION_ID = "chatcmpl-bench0000000000000000000000"
CREATED = 1732700000
REPLY_WORDS = ("Hello!", " How", " can", " I", " help", " you", " today?")
PROMPT_TOKENS = 9


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _usage() -> dict[str, Any]:
    completion = len(REPLY_WORDS)
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def completion_body(model: str) -> bytes:
    """The canned non-streamed ``chat.completion``."""
    return _json(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(REPLY_WORDS),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
        }
    )


def stream_frames(model: str, include_usage: bool) -> list[bytes]:
    """The canned stream, one ``data: ...\\n\\n`` SSE frame per element."""

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = usage
        return b"data: " + _json(payload) + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    frames = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
    frames += [chunk([choice({"content": word})]) for word in REPLY_WORDS]
    frames.append(chunk([choice({}, "stop")]))
    if include_usage:
        frames.append(chunk([], _usage()))
    frames.append(b"data: [DONE]\n\n")
    return frames


def _chunked(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status,
        content_type,
        len(body),
    )
    return head + body


class Canned:
    """Every answer the server gives, as ready-to-write bytes."""

    def __init__(self, model: str) -> None:
        self.completion = _response(b"200 OK", b"application/json", completion_body(model))
        self.health = _response(b"200 OK", b"text/plain", b"ok")
        self.not_found = _response(
            b"404 Not Found", b"application/json", _json({"error": {"message": "not found"}})
        )
        self.bad_request = _response(
            b"400 Bad Request", b"application/json", _json({"error": {"message": "bad request"}})
        )
        self.stream_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.stream_end = b"0\r\n\r\n"
        self.stream_usage = [_chunked(f) for f in stream_frames(model, include_usage=True)]
        self.stream_plain = [_chunked(f) for f in stream_frames(model, include_usage=False)]
        self.stream_usage_whole = self.stream_head + b"".join(self.stream_usage) + self.stream_end
        self.stream_plain_whole = self.stream_head + b"".join(self.stream_plain) + self.stream_end


def _content_length(head: bytes) -> int | None:
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += 17
    end = lowered.find(b"\r\n", start)
    try:
        return int(lowered[start : end if end >= 0 else None])
    except ValueError:
        return None


def _wants_stream(body: bytes) -> bool:
    return b'"stream":true' in body or b'"stream": true' in body


def _wants_usage(body: bytes) -> bool:
    return b'"include_usage":true' in body or b'"include_usage": true' in body


class FakeProvider(asyncio.Protocol):
    """One connection. Requests are answered in order; with added latency the next request on
    the connection is parsed only after the previous answer is complete."""

    def __init__(self, canned: Canned, latency: float) -> None:
        self._canned = canned
        self._latency = latency
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio.Transport; they implement it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve()

    def _serve(self) -> None:
        buffer = self._buffer
        while not self._busy and self._transport is not None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            length = _content_length(head)
            if length is None:
                self._write(self._canned.bad_request, close=True)
                return
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        close = b"\r\nconnection: close" in head.lower()
        line_end = head.find(b"\r\n")
        parts = head[: line_end if line_end >= 0 else None].split(b" ")
        method, path = (parts[0], parts[1]) if len(parts) >= 2 else (b"", b"")
        canned = self._canned
        if method == b"GET":
            self._reply(canned.health, close)
        elif method != b"POST" or path.split(b"?", 1)[0] != CHAT_PATH:
            self._reply(canned.not_found, close)
        elif not _wants_stream(body):
            self._reply(canned.completion, close)
        elif self._latency <= 0:
            whole = canned.stream_usage_whole if _wants_usage(body) else canned.stream_plain_whole
            self._write(whole, close)
        else:
            frames = canned.stream_usage if _wants_usage(body) else canned.stream_plain
            self._stream([canned.stream_head + frames[0], *frames[1:]], close)

    def _reply(self, data: bytes, close: bool) -> None:
        if self._latency <= 0:
            self._write(data, close)
            return
        self._busy = True
        self._later(lambda: self._finish(data, close))

    def _stream(self, pieces: list[bytes], close: bool) -> None:
        self._busy = True

        def step(index: int) -> None:
            if self._transport is None:
                return
            if index == len(pieces) - 1:
                self._finish(pieces[index] + self._canned.stream_end, close)
                return
            self._transport.write(pieces[index])
            self._later(lambda: step(index + 1))

        self._later(lambda: step(0))

    def _later(self, callback: Callable[[], None]) -> None:
        self._timer = self._loop.call_later(self._latency, callback)

    def _finish(self, data: bytes, close: bool) -> None:
        self._timer = None
        self._busy = False
        self._write(data, close)
        if not close and self._buffer:
            self._serve()

    def _write(self, data: bytes, close: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(data)
        if close:
            self._transport.close()
            self._transport = None


async def serve(host: str, port: int, latency_ms: float, model: str) -> None:
    canned = Canned(model)
    latency = latency_ms / 1000.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: FakeProvider(canned, latency), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"fake provider listening on http://{host}:{bound}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay before answering and between stream frames",
    )
    parser.add_argument("--model", default="gpt-4o-2024-08-06", help="model name in answers")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, args.latency_ms, args.model))


if __name__ == "__main__":
    main()
