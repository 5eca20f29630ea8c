"""Several concurrent provider calls as one stream of events (providers without a native ``n``).

Each sample is its own upstream call; their events are interleaved as they arrive through one
bounded queue, so memory stays bounded however long the replies are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from chatgate.errors import ChatgateError, ProviderError
from chatgate.streaming import RawResponse, StreamEvent, StreamFailed, UsageReport

#: Events waiting to be consumed, across all of a call's samples.
MERGE_QUEUE_SIZE = 32


async def merged_samples(
    run: Callable[[int], AsyncGenerator[StreamEvent, None]], num_samples: int, origin: str
) -> AsyncGenerator[StreamEvent, None]:
    """``num_samples`` concurrent calls (``run(i)`` is sample i's), their events interleaved as
    they arrive through one bounded queue.

    A failure before any sample produced content fails the call (the others are cancelled); a
    later one is a StreamFailed for the samples still running. Closing this generator cancels
    every upstream call.
    """
    queue: asyncio.Queue[tuple[StreamEvent | BaseException | None]] = asyncio.Queue(
        MERGE_QUEUE_SIZE
    )

    async def pump(index: int) -> None:
        try:
            async for event in run(index):
                await queue.put((event,))
        except Exception as exc:
            await queue.put((exc,))
        else:
            await queue.put((None,))

    tasks = [asyncio.create_task(pump(i)) for i in range(num_samples)]
    running, content = len(tasks), False
    try:
        while running:
            (item,) = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                running -= 1
                if not content:
                    raise item
                error = (
                    item
                    if isinstance(item, ChatgateError)
                    else ProviderError(
                        f"{origin} sent a response chatgate could not read ({item})",
                        status=502,
                        origin=origin,
                        kind="provider_response_error",
                    )
                )
                yield StreamFailed(error)
            elif isinstance(item, StreamFailed) and not content:
                raise item.error
            else:
                content = content or not isinstance(item, (RawResponse, UsageReport))
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
