"""The chat orchestration: resolve, render, call the provider, record, answer.

The HTTP layer turns a v4 body into a :class:`ChatInput`; :meth:`ChatService.chat` returns a
:class:`ChatOutcome` that the HTTP layer renders as a v4 ``ChatResponse``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from chatgate import ids
from chatgate.domain import (
    ChatCall,
    LogRecord,
    Message,
    ModelConfig,
    Sample,
    ToolChoiceValue,
    Usage,
)
from chatgate.errors import (
    ChatgateError,
    InvalidRequest,
    NotFound,
    NotImplementedByServer,
    ProviderError,
    ServiceUnavailable,
)
from chatgate.providers import NOT_YET_SUPPORTED, WIRES
from chatgate.providers.base import ProviderSpec, Upstream, Wire
from chatgate.providers.prices import ModelPrice, PriceTable
from chatgate.services.auth import Principal
from chatgate.services.credentials import CredentialResolver
from chatgate.services.log_limit import LogLimit
from chatgate.services.recorder import records_for, scrub, scrub_message, without_payloads
from chatgate.services.redaction import scrub_sample, secrets_of
from chatgate.services.resolve import Placement, Resolver
from chatgate.store.writer import LogWriter
from chatgate.streaming import Accumulator, StreamEvent
from chatgate.templating import TemplateRenderer

#: The error recorded on a call whose client disconnected before its answer was complete.
CANCELLED = "cancelled: the client disconnected before the answer was complete"


@dataclass(slots=True)  # treated as immutable; not frozen for speed (see domain.py)
class ChatInput:
    """A validated v4 chat request, with request-level overrides applied to ``config``."""

    config: ModelConfig
    messages: tuple[Message, ...]
    project: str | None = None
    project_id: str | None = None
    session_id: str | None = None
    session_reference_id: str | None = None
    parent_id: str | None = None
    parent_reference_id: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    metadata: dict[str, Any] | None = None
    save: bool = True
    source_datapoint_id: str | None = None
    provider_api_keys: Mapping[str, str | None] | None = field(default=None, repr=False)
    num_samples: int = 1
    stream: bool = False
    user: str | None = None
    return_inputs: bool = True
    #: Normalised: "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}.
    tool_choice: ToolChoiceValue = None
    response_format: dict[str, Any] | None = None
    #: ``oc_...`` ids of organisation tools the config links to.
    linked_tool_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    project_id: str
    session_id: str | None
    config_id: str
    log_ids: list[str]
    samples: list[Sample]
    usage: Usage | None
    messages: list[dict[str, Any]]
    provider_request: dict[str, Any]
    provider_responses: list[Any]


@dataclass(slots=True)
class PreparedCall:
    """A call ready to run: the provider request is built and every name is resolved."""

    spec: ProviderSpec
    call: ChatCall
    upstream: Upstream
    #: The log record every sample starts from (ids, inputs, messages, provider_request ...).
    base: LogRecord
    log_ids: list[str]
    secrets: tuple[str, ...]
    started: float
    #: The provider's events; nothing is sent upstream until the first one is awaited.
    events: AsyncGenerator[StreamEvent, None]
    #: The model's price, if the price table has one (logs of unpriced models have no cost).
    price: ModelPrice | None = None

    def outcome(self, accumulator: Accumulator, finished: Finished) -> ChatOutcome:
        return ChatOutcome(
            project_id=self.base.project_id,
            session_id=self.base.session_id,
            config_id=self.base.config_id,
            log_ids=self.log_ids,
            samples=finished.samples,
            usage=accumulator.total_usage,
            messages=self.base.messages or [],
            provider_request=self.base.provider_request,
            provider_responses=finished.responses,
        )


def as_provider_error(exc: Exception, spec: ProviderSpec) -> ProviderError:
    """Anything a wire raised, as the provider error the caller sees."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, (KeyError, TypeError, ValueError, AttributeError, IndexError)):
        # A 200 whose body does not have the provider's documented shape.
        return ProviderError(
            f"{spec.origin} sent a response chatgate could not read ({type(exc).__name__}: {exc})",
            status=502,
            origin=spec.origin,
            kind="provider_response_error",
        )
    raise exc


@dataclass(frozen=True, slots=True)
class Finished:
    """What a call that ran produced: its logs, its samples and the provider's raw responses."""

    records: list[LogRecord]
    samples: list[Sample]
    responses: list[Any]


def finished_records(
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
    error = accumulator.error.message if accumulator.error else unfinished_error
    samples = [scrub_sample(sample, prepared.secrets) for sample in accumulator.samples()]
    for i, sample in enumerate(samples):
        sample_error = sample.error
        if sample_error is None and error is not None and not accumulator.is_finished(i):
            sample_error = error
        if sample_error is not None:
            samples[i] = replace(sample, error=scrub_message(sample_error, prepared.secrets))
    responses = scrub(accumulator.raw_responses, prepared.secrets)
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


class ChatService:
    def __init__(
        self,
        *,
        registry: Mapping[str, ProviderSpec],
        resolver: Resolver,
        credentials: CredentialResolver,
        writer: LogWriter,
        http: aiohttp.ClientSession,
        durable: bool = True,
        prices: PriceTable | None = None,
        templates: TemplateRenderer | None = None,
        log_limit: LogLimit | None = None,
        wires: Mapping[str, Wire] = WIRES,
    ) -> None:
        self._registry = registry
        self._wires = wires
        self._resolver = resolver
        self._credentials = credentials
        self._writer = writer
        self._http = http
        self._durable = durable
        self._prices = prices or PriceTable()
        self._templates = templates or TemplateRenderer()
        self._log_limit = log_limit or LogLimit()
        self._background: set[asyncio.Task[None]] = set()

    def provider(self, name: str) -> ProviderSpec:
        spec = self._registry.get(name)
        if spec is not None:
            return spec
        if name in NOT_YET_SUPPORTED:
            raise NotImplementedByServer(
                f"provider '{name}' is part of the v4 API but not supported by this chatgate "
                f"version; supported: {', '.join(sorted(self._registry))}"
            )
        raise InvalidRequest.at(
            ("body", "model_config", "provider"),
            f"unknown provider '{name}'; expected one of: {', '.join(sorted(self._registry))}",
            "enum",
        )

    async def prepare(self, principal: Principal, request: ChatInput) -> PreparedCall:
        """Everything before the provider is called; every failure here is a plain v4 error."""
        started = time.perf_counter()
        created_at = time.time()
        org_id = principal.org_id
        config = request.config
        spec = self.provider(config.provider)
        if request.linked_tool_ids:
            raise NotFound(
                f"tool '{request.linked_tool_ids[0]}' not found: this server has no organisation "
                "tools; define the tool inline in model_config.tools"
            )
        messages = request.messages
        if config.chat_template:
            rendered = await self._templates.render_messages(
                config.chat_template, request.inputs, config.template_language
            )
            messages = (*rendered, *messages)
        credential = await self._credentials.resolve(spec, org_id, request.provider_api_keys)
        api_key = credential.api_key
        call = ChatCall(
            config=config,
            messages=messages,
            num_samples=request.num_samples,
            user=request.user,
            tool_choice=request.tool_choice,
            response_format=request.response_format,
            api_key=api_key,
            # The endpoint bound to the key; a caller-supplied one is checked by the wire's guard.
            base_url=credential.base_url or spec.base_url,
            base_url_from_caller=credential.from_caller,
            stream=request.stream,
        )
        wire = self._wires[spec.wire]
        upstream = wire.prepare(call, spec)
        secrets = secrets_of(api_key)
        provider_request = scrub(upstream.body, secrets)

        placed = await self._resolver.place(
            org_id,
            Placement(
                project=request.project,
                project_id=request.project_id,
                session_id=request.session_id,
                session_reference_id=request.session_reference_id,
                parent_id=request.parent_id,
                parent_reference_id=request.parent_reference_id,
            ),
        )
        config_id = await self._resolver.config(org_id, config)
        # The caller's own text may hold the key too (whoever sent it, it is not stored).
        inputs, message_dicts, metadata = scrub(
            [request.inputs, [m.to_v4() for m in messages], request.metadata], secrets
        )
        base = LogRecord(
            id="",
            org_id=org_id,
            project_id=placed.project_id,
            config_id=config_id,
            provider=spec.name,
            model=config.model,
            created_at=created_at,
            session_id=placed.session_id,
            parent_id=placed.parent_id,
            save=request.save,
            inputs=inputs,
            messages=message_dicts,
            provider_request=provider_request,
            metadata=metadata,
            source=request.source,
            source_datapoint_id=request.source_datapoint_id,
            user=request.user,
            tool_choice=request.tool_choice,
            tools=[t.to_v4() for t in config.tools] or None,
        )
        return PreparedCall(
            spec=spec,
            call=call,
            upstream=upstream,
            base=base,
            log_ids=[ids.new_id(ids.LOG) for _ in range(request.num_samples)],
            secrets=secrets,
            started=started,
            events=wire.events(self._http, upstream, call, spec),
            price=self._prices.lookup(spec.name, config.model),
        )

    async def chat(self, principal: Principal, request: ChatInput) -> ChatOutcome:
        prepared = await self.prepare(principal, request)
        accumulator = Accumulator(request.num_samples)
        provider_started = time.perf_counter()
        try:
            async for event in prepared.events:
                accumulator.feed(event)
        except asyncio.CancelledError:
            # The client went away (api/disconnect.py cancels the request): close the upstream
            # call now rather than at the provider timeout, and log what was received.
            with contextlib.suppress(BaseException):
                await prepared.events.aclose()
            finished = finished_records(
                prepared, accumulator, provider_started, unfinished_error=CANCELLED
            )
            self.record_in_background(finished.records)
            raise
        except Exception as exc:
            failure = as_provider_error(exc, prepared.spec)
            await self.record_failure(prepared, failure, provider_started)
            raise failure from None
        finished = finished_records(prepared, accumulator, provider_started)
        await self.record(finished.records)
        return prepared.outcome(accumulator, finished)

    async def record_failure(
        self, prepared: PreparedCall, failure: ProviderError, provider_started: float
    ) -> None:
        """A call that failed before producing anything: one log (sample 0) with its error."""
        failure.message = scrub_message(failure.message, prepared.secrets)
        now = time.perf_counter()
        failed = replace(
            prepared.base,
            id=prepared.log_ids[0],
            error=failure.message,
            duration=now - prepared.started,
            provider_latency=now - provider_started,
        )
        await self.record([failed if failed.save else without_payloads(failed)])

    def record_in_background(self, records: list[LogRecord]) -> None:
        if self._log_limit.fits(records):
            self._writer.write_in_background(records)
            return
        task = asyncio.ensure_future(self._fit_then_write_in_background(records))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fit_then_write_in_background(self, records: list[LogRecord]) -> None:
        self._writer.write_in_background(await self._log_limit.fit(records))

    async def record(self, records: list[LogRecord]) -> None:
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
