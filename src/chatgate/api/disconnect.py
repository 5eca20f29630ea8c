"""Stopping a request's work when its client hangs up.

A non-streamed chat call can wait minutes for its provider. If the client disconnects meanwhile,
nobody will read the answer, so the call is cancelled at once: the upstream connection is closed
(the provider stops generating and billing) and the log records the cancellation
(services/chat.py). Streams also watch for the disconnect themselves (api/sse.py).

The request registers its task in its ASGI scope; chatgate's HTTP protocol
(edge/protocol.py), which learns of the lost connection first, cancels it. That costs one dict
entry per call: a task per call watching ``receive()`` instead, the ASGI way, was measured at
~75,000 instructions per request (about 10 % of ``/v4/chat``'s own cost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Scope

from chatgate.edge.protocol import CANCEL_ON_DISCONNECT, DISCONNECTED
from chatgate.errors import ClientGone

T = TypeVar("T")


async def unless_client_leaves(scope: Scope, work: Awaitable[T]) -> T:
    """Await ``work`` in the current task; if the client disconnects first, it is cancelled and
    :class:`ClientGone` (answered to nobody) is raised."""
    scope[CANCEL_ON_DISCONNECT] = asyncio.current_task()
    try:
        return await work
    except asyncio.CancelledError:
        if scope.get(CANCEL_ON_DISCONNECT) is not DISCONNECTED:
            raise  # cancelled by something else (shutdown): not ours to swallow
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        raise ClientGone("the client disconnected before the answer was ready") from None
    finally:
        del scope[CANCEL_ON_DISCONNECT]
