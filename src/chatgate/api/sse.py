"""Server-sent events in the v4 streaming shape.

Each frame is one ``data: {json}\\n\\n`` line holding a ChatResponse-shaped object whose
``data[0]`` is the sample the frame is about; each frame goes out in a single write. The
response watches for the client's disconnect itself (rather than waiting for the next write to
fail) so an abandoned stream is cancelled — and its upstream call closed — at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chatgate.domain import Message, Sample
from chatgate.services.chat import ChatInput
from chatgate.services.chat_stream import (
    ChatStream,
    KeepAlive,
    SampleDelta,
    SampleDone,
    SampleFailed,
    StreamOutput,
)

KEEPALIVE_FRAME = b": keep-alive\n\n"
#: finish_reason of a sample whose stream failed; the frame also carries the v4 ``error`` object.
FAILED = "error"


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None]) -> None:
        # No Response.__init__: it would declare "content-length: 0" for a body it never saw.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        pump = asyncio.create_task(self._pump(send))
        watch = asyncio.create_task(_wait_for_disconnect(receive))
        done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        if pump in done:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            pump.result()
            return
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _pump(self, send: Send) -> None:
        try:
            async for frame in self._frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self._frames.aclose()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _frame(body: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def frames(request: ChatInput, stream: ChatStream) -> AsyncGenerator[bytes, None]:
    prepared = stream.prepared
    base = prepared.base
    envelope = {
        "project_id": base.project_id,
        "num_samples": request.num_samples,
        "logprobs": None,
        "suffix": None,
        "user": request.user,
        "usage": None,
        "metadata": request.metadata,
        "provider_responses": [],
        "provider_request": None,
        "session_id": base.session_id,
        "tool_choice": request.tool_choice,
    }
    inputs = request.inputs if request.return_inputs else {}

    def data(
        index: int,
        log_id: str,
        text: str,
        finish_reason: str | None,
        message: Message,
        *,
        final: bool,
    ) -> dict[str, Any]:
        output_message = message.to_v4()
        return {
            "id": log_id,
            "index": index,
            "output": text,
            "raw_output": text,
            "inputs": inputs if final else None,
            "finish_reason": finish_reason,
            "model_config_id": base.config_id,
            "tool_results": [],
            "messages": base.messages if final else None,
            "tool_call": output_message["tool_call"],
            "tool_calls": output_message["tool_calls"],
            "output_message": output_message,
        }

    def final(output: SampleDone | SampleFailed, reason: str | None) -> dict[str, Any]:
        sample: Sample = output.sample
        # The last frame adds no text; it carries the finish, the assembled tool calls, the
        # sample's usage and what the provider was sent and answered.
        message = Message("assistant", "", tool_calls=sample.output_message.tool_calls)
        return {
            **envelope,
            "data": [data(output.index, output.log_id, "", reason, message, final=True)],
            "usage": sample.usage.to_v4() if sample.usage else None,
            "provider_request": base.provider_request,
            "provider_responses": stream.provider_responses,
        }

    output: StreamOutput
    outputs = stream.outputs()
    try:
        async for output in outputs:
            if isinstance(output, SampleDelta):
                message = Message("assistant", output.text)
                yield _frame(
                    {
                        **envelope,
                        "data": [
                            data(
                                output.index, output.log_id, output.text, None, message, final=False
                            )
                        ],
                    }
                )
            elif isinstance(output, SampleDone):
                yield _frame(final(output, output.sample.finish_reason))
            elif isinstance(output, SampleFailed):
                body = final(output, FAILED)
                body["error"] = output.error.body()["detail"]
                yield _frame(body)
            elif isinstance(output, KeepAlive):
                yield KEEPALIVE_FRAME
    finally:
        await outputs.aclose()
