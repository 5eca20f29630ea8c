"""The Replicate predictions wire, for the chat language models hosted on Replicate.

A v4 model ``owner/name`` is ``POST {base}/v1/models/{owner}/{name}/predictions``; a version id
(64 hex digits, or ``owner/name:<version>``) is ``POST {base}/v1/predictions`` with ``version``.
Non-streamed calls ask for a synchronous answer (``Prefer: wait``) and poll ``urls.get`` while the
prediction is still ``starting``/``processing`` (bounded by :data:`POLL_DEADLINE`). Streamed calls
create the prediction with ``stream: true``, read ``urls.stream`` (server-sent events ``output``,
``error``, ``done``) and then fetch the finished prediction once, so the streamed log carries the
same prediction object (output, metrics) as the non-streamed one.

Replicate language models take a prompt, not a message list: the conversation is rendered into
``prompt`` (see :func:`render_prompt`) and system messages into ``system_prompt``; the sampling
fields use the names of Replicate's official language models (meta/*, mistralai/* ...). Tools,
images, JSON mode and reasoning settings have no faithful equivalent and are a 422. The
field-by-field table is in docs/providers.md.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from chatgate.domain import ChatCall, Message, Usage
from chatgate.errors import InvalidRequest, ProviderConnectionError, ProviderError, ProviderTimeout
from chatgate.providers import _http
from chatgate.providers._samples import merged_samples
from chatgate.providers._sse import SSEDecoder
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.streaming import (
    Finish,
    RawResponse,
    StreamEvent,
    StreamFailed,
    TextDelta,
    UsageReport,
)

#: Replicate answers errors as RFC 7807 problem details (``{"title", "detail", "status"}``):
#: the v4 ``type`` comes from the status.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}

#: Terminal prediction statuses that are not success: the v4 error's type (status 502: the
#: provider accepted the call and then failed it).
FAILED_STATUSES: dict[str, str] = {
    "failed": "prediction_failed",
    "canceled": "prediction_canceled",
    "aborted": "prediction_aborted",
}
TERMINAL = frozenset({"succeeded", *FAILED_STATUSES})

#: Seconds between polls of ``urls.get``, and the longest a call polls before giving up (504).
POLL_INTERVAL = 0.5
POLL_DEADLINE = 600.0

_VERSION = re.compile(r"[0-9a-f]{64}")
#: An official model's ``owner/name``: it becomes part of the URL path, so nothing that could
#: step out of ``/v1/models/`` (``..``, ``?``, ``#``, more slashes) gets through.
_MODEL_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*/[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
)
_PARAMETER = "value_error.provider_parameter"
ROLE_LABELS: dict[str, str] = {"user": "User", "assistant": "Assistant"}
SYSTEM_ROLES = frozenset({"system", "developer"})

Loc = tuple[str | int, ...]


def _refuse(spec: ProviderSpec, loc: Loc, what: str) -> InvalidRequest:
    return InvalidRequest.at(loc, f"provider '{spec.name}' (Replicate) {what}", _PARAMETER)


# --- request ------------------------------------------------------------------------------------


def _text(message: Message, loc: Loc, spec: ProviderSpec) -> str:
    if isinstance(message.content, list):
        for n, part in enumerate(message.content):
            if part.get("type") != "text":
                raise _refuse(
                    spec, (*loc, "content", n), "takes text only (the model reads one prompt)"
                )
    return message.text()


def render_prompt(messages: tuple[Message, ...], spec: ProviderSpec) -> tuple[str, str | None]:
    """(``prompt``, ``system_prompt``).

    One user message is the prompt as it is (the model applies its own chat template around
    it). A longer conversation is rendered as a transcript, one ``User: ...`` / ``Assistant: ...``
    paragraph per turn, in order. System messages, joined by a blank line, are the system prompt.
    """
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        loc: Loc = ("body", "messages", i)
        if message.name is not None:
            raise _refuse(spec, (*loc, "name"), "has no participant names on messages")
        if message.role in SYSTEM_ROLES:
            system.append(_text(message, loc, spec))
        elif message.role in ROLE_LABELS:
            if message.tool_calls:
                raise _refuse(spec, (*loc, "tool_calls"), "has no tool calls")
            turns.append((message.role, _text(message, loc, spec)))
        else:
            raise _refuse(spec, (*loc, "role"), f"has no message role '{message.role}'")
    if len(turns) == 1 and turns[0][0] == "user":
        prompt = turns[0][1]
    else:
        prompt = "\n\n".join(f"{ROLE_LABELS[role]}: {text}" for role, text in turns)
    return prompt, "\n\n".join(system) if system else None


def _refuse_unsupported(call: ChatCall, spec: ProviderSpec) -> None:
    config = call.config
    if config.tools:
        raise _refuse(spec, ("body", "model_config", "tools"), "has no tools")
    if call.tool_choice is not None and call.tool_choice != "none":
        raise _refuse(spec, ("body", "tool_choice"), "has no tools")
    response_format = call.response_format or config.response_format
    if response_format is not None and response_format.get("type") != "text":
        loc: Loc = (
            ("body", "response_format")
            if call.response_format
            else ("body", "model_config", "response_format")
        )
        raise _refuse(spec, loc, "has no JSON mode (response_format)")
    if config.reasoning_effort is not None:
        raise _refuse(
            spec, ("body", "model_config", "reasoning_effort"), "has no reasoning setting"
        )
    stops = [config.stop] if isinstance(config.stop, str) else config.stop or []
    for n, stop in enumerate(stops):
        if "," in stop:
            loc = ("body", "model_config", "stop") + ((n,) if isinstance(config.stop, list) else ())
            raise _refuse(
                spec, loc, "takes stop sequences as one comma-separated string: no commas in them"
            )


def build_input(call: ChatCall, spec: ProviderSpec) -> dict[str, Any]:
    config = call.config
    _refuse_unsupported(call, spec)
    prompt, system_prompt = render_prompt(call.messages, spec)
    # `other` first: the v4 fields below are explicit and win over a duplicate in `other`.
    data: dict[str, Any] = dict(config.other)
    data["prompt"] = prompt
    if system_prompt is not None:
        data["system_prompt"] = system_prompt
    if config.max_tokens != -1:
        data["max_tokens"] = config.max_tokens
    # Sent always: the model's own defaults vary (Llama 3: temperature 0.6, top_p 0.9), and the
    # v4 log says what the call ran at.
    data["temperature"] = config.temperature
    data["top_p"] = config.top_p
    if config.stop:
        stops = [config.stop] if isinstance(config.stop, str) else config.stop
        data["stop_sequences"] = ",".join(stops)
    if config.seed is not None:
        data["seed"] = config.seed
    if config.presence_penalty != 0:
        data["presence_penalty"] = config.presence_penalty
    if config.frequency_penalty != 0:
        data["frequency_penalty"] = config.frequency_penalty
    return data


def endpoint(model: str) -> tuple[str, str | None]:
    """(path, version): an official model by name, or a specific version by id."""
    name, _, version = model.partition(":")
    if version:
        return "/v1/predictions", version
    if _VERSION.fullmatch(name):
        return "/v1/predictions", name
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidRequest.at(
            ("body", "model_config", "model"),
            "a Replicate model is 'owner/name', 'owner/name:version' or a 64-character version "
            "id (letters, digits, '-', '_' and single dots)",
            _PARAMETER,
        )
    return f"/v1/models/{name}/predictions", None


# --- response -----------------------------------------------------------------------------------


def output_text(output: Any) -> str:
    """Language models' output: a list of string tokens (joined), or a string."""
    if output is None:
        return ""
    if isinstance(output, list):
        return "".join(str(token) for token in output)
    return str(output)


def usage_from(prediction: dict[str, Any]) -> Usage | None:
    metrics = prediction.get("metrics") or {}
    if metrics.get("input_token_count") is None and metrics.get("output_token_count") is None:
        return None
    return Usage(
        prompt_tokens=int(metrics.get("input_token_count") or 0),
        generation_tokens=int(metrics.get("output_token_count") or 0),
    )


def prediction_error(prediction: dict[str, Any], origin: str) -> ProviderError | None:
    status = str(prediction.get("status"))
    if status not in FAILED_STATUSES:
        return None
    message = str(prediction.get("error") or f"the prediction was {status}")
    return ProviderError(message, status=502, origin=origin, kind=FAILED_STATUSES[status])


def closing_events(prediction: dict[str, Any], index: int, origin: str) -> list[StreamEvent]:
    events: list[StreamEvent] = [RawResponse(prediction)]
    usage = usage_from(prediction)
    if usage is not None:
        events.append(UsageReport(usage, index))
    failed = prediction_error(prediction, origin)
    events.append(StreamFailed(failed) if failed is not None else Finish(index, "stop"))
    return events


def problem(error: ProviderError) -> ProviderError:
    """Replicate's problem-details body as the v4 error: ``detail`` the message, type by status."""
    try:
        parsed: Any = orjson.loads(error.message)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("detail") is not None:
        detail = parsed["detail"]
        error.message = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    if error.type == ProviderError.type and error.status in ERROR_TYPES:
        error.type = ERROR_TYPES[error.status]
    return error


# --- transport ----------------------------------------------------------------------------------


class Client:
    """The HTTP calls of one prediction: create, poll, stream, all with Replicate's errors."""

    def __init__(self, http: aiohttp.ClientSession, upstream: Upstream, spec: ProviderSpec):
        self.http = http
        self.upstream = upstream
        self.origin = spec.origin
        self._api = urlsplit(upstream.url).netloc

    def _headers(self, url: str) -> dict[str, str]:
        """The bearer token goes only to the API's host and Replicate's own (the stream host)."""
        host = urlsplit(url).netloc
        if host == self._api or (
            urlsplit(url).scheme == "https" and host.rsplit(":", 1)[0].endswith(".replicate.com")
        ):
            return {"Authorization": self.upstream.headers.get("Authorization", "")}
        return {}

    async def create(self, *, wait: bool) -> dict[str, Any]:
        headers = dict(self.upstream.headers)
        if not wait:
            headers.pop("Prefer", None)
        try:
            async with _http.post(
                self.http, self.upstream.url, self.upstream.body, headers, origin=self.origin
            ) as response:
                raw = await response.read()
        except ProviderError as exc:
            raise problem(exc) from None
        prediction: dict[str, Any] = _json(raw, self.origin)
        return prediction

    @asynccontextmanager
    async def get(self, url: str, *, stream: bool = False) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = self._headers(url)
        timeout = self.http.timeout
        if stream:
            headers["Accept"] = "text/event-stream"
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=timeout.sock_connect, sock_read=timeout.total
            )
        try:
            async with self.http.get(
                url, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    message, kind = _http.error_message(raw, response.status)
                    raise problem(
                        ProviderError(
                            message, status=response.status, origin=self.origin, kind=kind
                        )
                    )
                yield response
        except TimeoutError:
            raise ProviderTimeout(
                f"{self.origin} did not answer in time", origin=self.origin
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ProviderConnectionError(
                f"could not read from {self.origin}: {exc}", origin=self.origin
            ) from None

    async def finished(
        self, prediction: dict[str, Any], *, at_once: bool = False
    ) -> dict[str, Any]:
        """The prediction once it reached a terminal status, polling ``urls.get`` (the first time
        without waiting when ``at_once``: after its stream said ``done``)."""
        deadline = time.monotonic() + POLL_DEADLINE
        delay = 0.0 if at_once else POLL_INTERVAL
        while str(prediction.get("status")) not in TERMINAL:
            url = (prediction.get("urls") or {}).get("get")
            if not url:
                raise ProviderError(
                    f"{self.origin} answered a prediction without urls.get",
                    status=502,
                    origin=self.origin,
                )
            if time.monotonic() > deadline:
                raise ProviderTimeout(
                    f"{self.origin}'s prediction did not finish in {POLL_DEADLINE:.0f} s",
                    origin=self.origin,
                )
            await asyncio.sleep(delay)
            delay = POLL_INTERVAL
            async with self.get(url) as response:
                prediction = _json(await response.read(), self.origin)
        return prediction


def _json(raw: bytes, origin: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProviderError(
            f"{origin} answered with a body that is not JSON", status=502, origin=origin
        ) from None


async def _sample(
    http: aiohttp.ClientSession, upstream: Upstream, spec: ProviderSpec, index: int, stream: bool
) -> AsyncGenerator[StreamEvent, None]:
    client = Client(http, upstream, spec)
    if not stream:
        prediction = await client.finished(await client.create(wait=True))
        text = output_text(prediction.get("output"))
        failed = prediction_error(prediction, spec.origin)
        if failed is not None and not text:
            raise failed  # nothing came out: a plain v4 error
        if text:
            yield TextDelta(index, text)
        for event in closing_events(prediction, index, spec.origin):
            yield event
        return
    prediction = await client.create(wait=False)
    stream_url = (prediction.get("urls") or {}).get("stream")
    if stream_url:
        async for event in _stream(client, stream_url, index):
            if isinstance(event, StreamFailed):
                yield RawResponse(prediction)
                yield event
                return
            yield event
    # The finished prediction (output, metrics) is what the same call returns unstreamed.
    prediction = await client.finished(prediction, at_once=bool(stream_url))
    if not stream_url:
        text = output_text(prediction.get("output"))
        if text:
            yield TextDelta(index, text)
    for event in closing_events(prediction, index, spec.origin):
        yield event


async def _stream(client: Client, url: str, index: int) -> AsyncGenerator[StreamEvent, None]:
    """The ``output`` events as text; ``error`` as a failure; returns at ``done``."""
    decoder = SSEDecoder()
    async with client.get(url, stream=True) as response:
        async for chunk in response.content.iter_any():
            for sse in decoder.feed(chunk):
                if sse.event == "output":
                    if sse.data:
                        yield TextDelta(index, sse.data)
                elif sse.event == "error":
                    yield StreamFailed(_stream_error(sse.data, client.origin))
                    return
                elif sse.event == "done":
                    return
    yield StreamFailed(
        ProviderConnectionError(
            f"{client.origin} ended the stream before the prediction finished",
            origin=client.origin,
        )
    )


def _stream_error(data: str, origin: str) -> ProviderError:
    try:
        parsed: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = data
    detail = parsed.get("detail") if isinstance(parsed, dict) else parsed
    return ProviderError(
        str(detail or "the prediction failed"), status=502, origin=origin, kind="prediction_failed"
    )


# --- the wire -----------------------------------------------------------------------------------


class ReplicateWire:
    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        base_url = (call.base_url or spec.base_url or "").rstrip("/")
        path, version = endpoint(call.config.model)
        body: dict[str, Any] = {}
        if version is not None:
            body["version"] = version
        body["input"] = build_input(call, spec)
        if call.stream:
            body["stream"] = True
        headers = {"Prefer": "wait"}
        if call.api_key:
            headers["Authorization"] = f"Bearer {call.api_key}"
        return Upstream(url=f"{base_url}{path}", body=body, headers=headers)

    def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        def run(index: int) -> AsyncGenerator[StreamEvent, None]:
            return _sample(http, upstream, spec, index, call.stream)

        if call.num_samples == 1:
            return run(0)
        return merged_samples(run, call.num_samples, spec.origin)
