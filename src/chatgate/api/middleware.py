"""The request-level middleware: the outermost layer every HTTP request passes through.

Starlette answers an unhandled exception with chatgate's v4 500 (api/errors.py) and then raises
it again on purpose, so that the server may log it; uvicorn then logs a second traceback and
closes the connection, which a keep-alive client sees as a reset. ``RequestMiddleware`` ends
that: an exception escaping after the answer was sent completely is already logged and
answered, so it stops here and the connection stays usable; one escaping before any answer
gets the v4 500 here; one escaping mid-answer (a stream) can only end the connection, as before.

It is also the place for what concerns every request before any route runs (limits, access
log, metrics: see the safe-on-a-network issues): add it here, as a cheap step of ``__call__``,
rather than as another middleware layer.
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.api.errors import error_body

log = logging.getLogger("chatgate")

_INTERNAL = orjson.dumps(error_body(500, "internal server error; see the server log"))
_INTERNAL_LENGTH = b"%d" % len(_INTERNAL)


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        complete = False

        async def watched_send(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            if complete:
                if status != 500:  # a 500 was answered and logged by api/errors.py
                    log.exception("unhandled error after the answer was sent")
                return
            if status:
                raise  # half an answer is out: only closing the connection can end it
            log.exception("unhandled error before any answer")
            await _answer_500(send)
        except BaseException:
            # Cancelled (shutdown) before answering: the v4 500 rather than uvicorn's plain
            # text, and the cancellation goes on.
            if not status:
                await _answer_500(send)
            raise


async def _answer_500(send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", _INTERNAL_LENGTH)]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": _INTERNAL})
