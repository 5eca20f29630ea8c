"""Recording chat calls: one log per sample, every credential removed, committed.

The non-streamed and the streamed path both end here, through one :class:`Recorder` (built
once, by the chat service):

* :meth:`Recorder.finished` turns what the accumulator folded into one :class:`LogRecord` per
  sample, with the call's keys scrubbed from the samples, the provider's responses and the error
  texts (services/redaction.py) and the payloads dropped when the request said ``save: false``;
* :meth:`Recorder.commit` cuts the records to ``CHATGATE_MAX_LOG_BYTES`` (services/log_limit.py)
  and commits them: durably (the caller waits for the group commit) or in the background
  (``CHATGATE_LOG_COMMIT=fast``). Records the database refuses make the call a 503;
* :meth:`Recorder.record_failure` records a call that failed before it produced anything, and
  :meth:`Recorder.record_abandoned` one whose client went away (nobody waits for that commit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from chatgate.domain import LogRecord, Sample
from chatgate.errors import ChatgateError, ProviderError, ServiceUnavailable
from chatgate.providers.prices import ModelPrice
from chatgate.services.log_limit import LogLimit
from chatgate.services.prepared import PreparedCall
from chatgate.services.redaction import scrub, scrub_message, scrub_sample
from chatgate.services.resolve import Resolver
from chatgate.store.writer import LogWriter
from chatgate.streaming import Accumulator


@dataclass(frozen=True, slots=True)
class Finished:
    """What a call that ran produced: its logs, its samples and the provider's raw responses,
    all scrubbed."""

    records: list[LogRecord]
    samples: list[Sample]
    responses: list[Any]


class Recorder:
    def __init__(
        self,
        writer: LogWriter,
        resolver: Resolver,
        *,
        durable: bool = True,
        log_limit: LogLimit | None = None,
    ) -> None:
        self._writer = writer
        self._resolver = resolver
        self._durable = durable
        self._log_limit = log_limit or LogLimit()
        self._background: set[asyncio.Task[None]] = set()

    def finished(
        self,
        prepared: PreparedCall,
        accumulator: Accumulator,
        provider_started: float,
        *,
        unfinished_error: str | None = None,
    ) -> Finished:
        """The logs of a call that ran: one per sample, streamed or not, from the same accumulator.

        ``unfinished_error`` is recorded on samples that never finished (a stream cut short).
        """
        finished = time.perf_counter()
        secrets = prepared.secrets
        error = accumulator.error.message if accumulator.error else unfinished_error
        samples = [scrub_sample(sample, secrets) for sample in accumulator.samples()]
        for i, sample in enumerate(samples):
            sample_error = sample.error
            if sample_error is None and error is not None and not accumulator.is_finished(i):
                sample_error = error
            if sample_error is not None:
                samples[i] = replace(sample, error=scrub_message(sample_error, secrets))
        responses = scrub(accumulator.raw_responses, secrets)
        records = records_for(
            base=prepared.base,
            log_ids=prepared.log_ids,
            samples=samples,
            provider_response=responses[0] if len(responses) == 1 else responses or None,
            duration=finished - prepared.started,
            provider_latency=finished - provider_started,
            price=prepared.price,
        )
        return Finished(records, samples, responses)

    async def commit(self, records: list[LogRecord]) -> None:
        """Commit ``records``; with durable commits, return once they are in the database."""
        if not self._log_limit.fits(records):
            records = await self._log_limit.fit(records)
        if not self._durable:
            self._writer.write_in_background(records)
            return
        try:
            await self._writer.write(records)
        except ChatgateError:
            raise
        except Exception as exc:
            # Most likely their project was deleted by another server process meanwhile (the
            # database refuses a log of a missing project): resolve it afresh next time.
            self._resolver.forget_projects_of(records)
            raise ServiceUnavailable(
                f"the call succeeded but could not be recorded ({type(exc).__name__}); retry later"
            ) from exc

    def commit_in_background(self, records: list[LogRecord]) -> None:
        """Queue ``records`` without waiting (the writer drains them on shutdown)."""
        if self._log_limit.fits(records):
            self._writer.write_in_background(records)
            return
        task = asyncio.ensure_future(self._fit_then_write_in_background(records))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fit_then_write_in_background(self, records: list[LogRecord]) -> None:
        self._writer.write_in_background(await self._log_limit.fit(records))

    async def record_failure(
        self, prepared: PreparedCall, failure: ProviderError, provider_started: float
    ) -> None:
        """A call that failed before producing anything: one log (sample 0) with its error.

        The error's message is scrubbed in place: the caller raises ``failure`` afterwards.
        """
        failure.message = scrub_message(failure.message, prepared.secrets)
        now = time.perf_counter()
        failed = replace(
            prepared.base,
            id=prepared.log_ids[0],
            error=failure.message,
            duration=now - prepared.started,
            provider_latency=now - provider_started,
        )
        await self.commit([failed if failed.save else without_payloads(failed)])

    def record_abandoned(
        self,
        prepared: PreparedCall,
        accumulator: Accumulator,
        provider_started: float,
        reason: str,
    ) -> None:
        """The client went away: record what was received, ``reason`` on unfinished samples.
        Nobody waits for this commit."""
        finished = self.finished(prepared, accumulator, provider_started, unfinished_error=reason)
        self.commit_in_background(finished.records)


def records_for(
    *,
    base: LogRecord,
    log_ids: Sequence[str],
    samples: Sequence[Sample],
    provider_response: Any,
    duration: float,
    provider_latency: float,
    price: ModelPrice | None = None,
) -> list[LogRecord]:
    """One record per sample; payloads are dropped when the request said ``save: false``."""
    records = []
    for log_id, sample in zip(log_ids, samples, strict=True):
        usage = sample.usage
        prompt_cost, output_cost = price.cost(usage) if price and usage else (None, None)
        record = replace(
            base,
            id=log_id,
            sample_index=sample.index,
            output=sample.output,
            raw_output=sample.raw_output,
            output_message=sample.output_message.to_v4(),
            finish_reason=sample.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.generation_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            cache_read_tokens=usage.cache_read_tokens if usage else None,
            cache_write_tokens=usage.cache_write_tokens if usage else None,
            duration=duration,
            provider_latency=provider_latency,
            provider_response=provider_response,
            error=sample.error or base.error,
            prompt_cost=prompt_cost,
            output_cost=output_cost,
        )
        records.append(record if base.save else without_payloads(record))
    return records


def without_payloads(record: LogRecord) -> LogRecord:
    """``save: false``: keep ids, timing, usage and status; drop what the call said."""
    return replace(
        record,
        inputs=None,
        messages=None,
        output=None,
        raw_output=None,
        output_message=None,
        provider_request=None,
        provider_response=None,
    )
