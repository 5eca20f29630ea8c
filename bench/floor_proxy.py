"""The floor: the least a Python proxy on chatgate's server stack can do.

Raw ASGI under uvicorn (uvloop + httptools) with one pooled aiohttp session upstream. Every POST
body is forwarded as-is to ``<upstream>/chat/completions`` and the answer is returned as-is
(streamed through when it is ``text/event-stream``). No validation, no logging, no auth.

    python -m bench.floor_proxy --port 9200 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

Scope = dict[str, Any]
Message = dict[str, Any]


class Floor:
    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.http: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]
                if event == "lifespan.startup":
                    self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                    await send({"type": "lifespan.startup.complete"})
                elif event == "lifespan.shutdown":
                    if self.http is not None:
                        await self.http.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body, message = b"", {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        assert self.http is not None
        headers = {"Content-Type": "application/json"}
        async with self.http.post(self.url, data=body, headers=headers) as upstream:
            kind = upstream.headers.get("Content-Type", "application/json")
            out = [(b"content-type", kind.encode())]
            if not kind.startswith("text/event-stream"):
                data = await upstream.read()
                out.append((b"content-length", str(len(data)).encode()))
                await send(
                    {"type": "http.response.start", "status": upstream.status, "headers": out}
                )
                await send({"type": "http.response.body", "body": data})
                return
            await send({"type": "http.response.start", "status": upstream.status, "headers": out})
            async for piece in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description="Minimal pass-through proxy (the floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    args = parser.parse_args()
    uvicorn.run(
        Floor(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
