"""The chat orchestration: resolve, render, call the provider, record, answer.

The HTTP layer turns a v4 body into a :class:`ChatInput` and calls one method of
:class:`ChatService`: :meth:`~ChatService.chat` returns a :class:`ChatOutcome` (rendered as a v4
``ChatResponse``), :meth:`~ChatService.stream` a started :class:`ChatStream` (rendered as
server-sent events). Both prepare the call the same way (:meth:`ChatService._prepare`) and
record it through the same :class:`Recorder` (services/recorder.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from chatgate.errors import InvalidRequest, NotFound, NotImplementedByServer
from chatgate.providers import NOT_YET_SUPPORTED, WIRES
from chatgate.providers.base import ProviderSpec, Wire
from chatgate.providers.prices import PriceTable
from chatgate.services.auth import Principal
from chatgate.services.chat_stream import ChatStream
from chatgate.services.credentials import CredentialResolver
from chatgate.services.log_limit import LogLimit
from chatgate.services.prepared import PreparedCall, as_provider_error
from chatgate.services.recorder import Recorder
from chatgate.services.redaction import scrub, secrets_of
from chatgate.services.resolve import Placement, Resolver
from chatgate.store.writer import LogWriter
from chatgate.streaming import Accumulator
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
        self._http = http
        self._prices = prices or PriceTable()
        self._templates = templates or TemplateRenderer()
        # One for the process: both paths record through it.
        self._recorder = Recorder(writer, resolver, durable=durable, log_limit=log_limit)

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

    async def _prepare(self, principal: Principal, request: ChatInput) -> PreparedCall:
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
        """A non-streamed call: run it, record its logs (durably, unless commits are fast) and
        return what it produced."""
        prepared = await self._prepare(principal, request)
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
            self._recorder.record_abandoned(prepared, accumulator, provider_started, CANCELLED)
            raise
        except Exception as exc:
            failure = as_provider_error(exc, prepared.spec)
            await self._recorder.record_failure(prepared, failure, provider_started)
            raise failure from None
        finished = self._recorder.finished(prepared, accumulator, provider_started)
        await self._recorder.commit(finished.records)
        base = prepared.base
        return ChatOutcome(
            project_id=base.project_id,
            session_id=base.session_id,
            config_id=base.config_id,
            log_ids=prepared.log_ids,
            samples=finished.samples,
            usage=accumulator.total_usage,
            messages=base.messages or [],
            provider_request=base.provider_request,
            provider_responses=finished.responses,
        )

    async def stream(
        self, principal: Principal, request: ChatInput, keepalive_seconds: float
    ) -> ChatStream:
        """A streamed call, started: the provider has sent its first content, and every failure
        until then is a plain v4 error (raised here). See services/chat_stream.py."""
        prepared = await self._prepare(principal, request)
        stream = ChatStream(self._recorder, prepared, keepalive_seconds)
        await stream.start()
        return stream
