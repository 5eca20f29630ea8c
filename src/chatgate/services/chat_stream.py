"""A streamed chat call: provider events in, typed outputs for the SSE layer out.

Text deltas are passed on as they arrive (samples interleave). When the provider's stream ends,
the samples' logs are built by the same accumulator and recorder as a non-streamed call and
committed; only then does each sample get its final output (``SampleDone`` / ``SampleFailed``), so
a client that saw a sample end can fetch its log.

If the client goes away, the consumer closes :meth:`ChatStream.outputs`: the upstream request is
cancelled at once (its connection closed) and the partial logs are written with the cancellation
recorded in ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from chatgate.domain import Sample
from chatgate.errors import ChatgateError, ProviderError
from chatgate.services.prepared import PreparedCall, as_provider_error
from chatgate.services.recorder import Recorder
from chatgate.services.redaction import StreamRedactor, scrub
from chatgate.streaming import (
    Accumulator,
    RawResponse,
    StreamEvent,
    StreamFailed,
    TextDelta,
    UsageReport,
)

#: The error recorded on a stream whose client disconnected before it finished.
CANCELLED = "cancelled: the client disconnected before the stream finished"


@dataclass(frozen=True, slots=True)
class SampleDelta:
    index: int
    log_id: str
    text: str


@dataclass(frozen=True, slots=True)
class SampleDone:
    index: int
    log_id: str
    sample: Sample


@dataclass(frozen=True, slots=True)
class SampleFailed:
    index: int
    log_id: str
    sample: Sample
    error: ChatgateError


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Nothing arrived for a while; the SSE layer sends a comment so proxies keep the line open."""


StreamOutput = SampleDelta | SampleDone | SampleFailed | KeepAlive


class ChatStream:
    """One streamed call (made by ``ChatService.stream``): :meth:`start`, then :meth:`outputs`."""

    def __init__(
        self, recorder: Recorder, prepared: PreparedCall, keepalive_seconds: float
    ) -> None:
        self._recorder = recorder
        self._prepared = prepared
        self._keepalive = keepalive_seconds
        self._accumulator = Accumulator(prepared.call.num_samples)
        self._provider_started = 0.0
        self._first: StreamEvent | None = None
        self._early: list[StreamEvent] = []

    @property
    def prepared(self) -> PreparedCall:
        return self._prepared

    @property
    def provider_responses(self) -> list[Any]:
        return list(scrub(self._accumulator.raw_responses, self._prepared.secrets))

    async def start(self) -> None:
        """Wait for the provider's first content (text, tool call or finish).

        A failure before it is a plain v4 error response; events before it (usage, the raw
        response) are kept for :meth:`outputs`.
        """
        self._provider_started = time.perf_counter()
        try:
            while True:
                event = await anext(self._prepared.events, None)
                if event is None or not isinstance(event, (RawResponse, UsageReport)):
                    break
                self._early.append(event)
        except asyncio.CancelledError:
            # The client left before the first token (api/disconnect.py cancelled us).
            await self._abandon(None)
            raise
        except Exception as exc:
            failure = as_provider_error(exc, self._prepared.spec)
            await self._recorder.record_failure(self._prepared, failure, self._provider_started)
            raise failure from None
        if isinstance(event, StreamFailed):
            error = event.error
            if isinstance(error, ProviderError):
                await self._recorder.record_failure(self._prepared, error, self._provider_started)
            raise error
        self._first = event

    async def outputs(self) -> AsyncGenerator[StreamOutput, None]:
        prepared, accumulator = self._prepared, self._accumulator
        for early in self._early:
            accumulator.feed(early)
        event = self._first
        waiting: asyncio.Future[StreamEvent | None] | None = None
        # One per sample: the key must not reach the client even split across deltas.
        redactors = [StreamRedactor(prepared.secrets) for _ in prepared.log_ids]
        try:
            while event is not None:
                accumulator.feed(event)
                if isinstance(event, TextDelta):
                    text = redactors[event.index].feed(event.text)
                    if text:
                        yield SampleDelta(event.index, prepared.log_ids[event.index], text)
                elif isinstance(event, StreamFailed):
                    break
                waiting = asyncio.ensure_future(anext(prepared.events, None))
                while not waiting.done():
                    await asyncio.wait({waiting}, timeout=self._keepalive)
                    if not waiting.done():
                        yield KeepAlive()
                try:
                    event = waiting.result()
                except Exception as exc:
                    accumulator.feed(StreamFailed(as_provider_error(exc, prepared.spec)))
                    event = None
                waiting = None
        except (asyncio.CancelledError, GeneratorExit):
            await self._abandon(waiting)
            raise
        # The provider may have more to say after a failure; nobody will read it.
        await prepared.events.aclose()
        for index, redactor in enumerate(redactors):
            held = redactor.flush()
            if held:
                yield SampleDelta(index, prepared.log_ids[index], held)
        finished = self._recorder.finished(prepared, accumulator, self._provider_started)
        commit_error: ChatgateError | None = None
        try:
            await self._recorder.commit(finished.records)
        except ChatgateError as exc:
            commit_error = exc
        for record, sample in zip(finished.records, finished.samples, strict=True):
            error = commit_error or (accumulator.error if sample.error else None)
            if error is not None:
                yield SampleFailed(sample.index, record.id, sample, error)
            else:
                yield SampleDone(sample.index, record.id, sample)

    async def _abandon(self, waiting: asyncio.Future[StreamEvent | None] | None) -> None:
        """The client is gone: close the upstream call now and record what was received."""
        if waiting is not None and not waiting.done():
            waiting.cancel()
            with contextlib.suppress(BaseException):
                await waiting
        with contextlib.suppress(BaseException):
            await self._prepared.events.aclose()
        # Nobody waits for this commit; the writer drains it on shutdown.
        self._recorder.record_abandoned(
            self._prepared, self._accumulator, self._provider_started, CANCELLED
        )
