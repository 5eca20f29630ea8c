"""Stopping a request's work when its client hangs up.

A non-streamed chat call can wait minutes for its provider. If the client disconnects meanwhile,
nobody will read the answer, so the call is cancelled at once: the upstream connection is closed
(the provider stops generating and billing) and the log records the cancellation
(services/chat.py). Streams watch for the disconnect themselves (api/sse.py).

Once the body has been read, the next ``receive()`` returns only when the client disconnects (or
the response is complete), so one small task waiting on it is the whole watch: it cancels the
request's task. That costs one task per non-streamed call, nothing per byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from chatgate.errors import ClientGone

T = TypeVar("T")


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[object]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel("client disconnected")


async def unless_client_leaves(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` in the current task; if the client disconnects first, cancel it and raise
    :class:`ClientGone` (answered to nobody). Call only after the request body was read."""
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(receive, task))
    try:
        return await work
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise  # cancelled by something else (shutdown): not ours to swallow
        task.uncancel()
        raise ClientGone("the client disconnected before the answer was ready") from None
    finally:
        watcher.cancel()
