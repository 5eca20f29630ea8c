"""The AWS Bedrock Converse wire: ``POST {endpoint}/model/{modelId}/converse`` and
``/converse-stream`` (answered in the AWS event-stream framing, see :mod:`aws_eventstream`).

Requests are signed with SigV4 (service ``bedrock``) from IAM credentials, or carry a Bedrock API
key as ``Authorization: Bearer``. The signature is over the exact body bytes, so it is computed
in :meth:`BedrockConverseWire.prepare` and the body is sent as those bytes. Bedrock has no ``n``:
``num_samples > 1`` runs one call per sample, concurrently, merged through a bounded queue. The
field-by-field table is in docs/providers.md.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
import yarl

from chatgate.domain import ChatCall, Message
from chatgate.errors import (
    BadRequest,
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
)
from chatgate.providers import _http
from chatgate.providers._samples import merged_samples
from chatgate.providers.anthropic_models import THINKING_BUDGETS, max_output_tokens
from chatgate.providers.aws_eventstream import EventStreamDecoder, EventStreamError
from chatgate.providers.aws_sigv4 import AwsCredentials, sign
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.providers.bedrock_response import (  # noqa: F401 (part of this wire's surface)
    ERRORS,
    FINISH_REASONS,
    ResponseAssembler,
    error_text,
    events_from_response,
    provider_error,
    usage_from,
)
from chatgate.streaming import (
    RawResponse,
    StreamEvent,
    StreamFailed,
)

SERVICE = "bedrock"
DEFAULT_REGION = "us-east-1"
#: Where the region comes from, in the AWS SDKs' order.
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
#: The AWS SDKs' service-specific endpoint variable for the "Bedrock Runtime" service id.
ENDPOINT_ENV = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
#: A Bedrock API key; when set it wins over IAM keys (as in the AWS SDKs).
BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"

#: ``image/<subtype>`` of a data URL -> Converse image ``format``.
IMAGE_FORMATS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

#: Converse request fields that ``other`` may set at the top level; any other key of ``other``
#: is a model-specific parameter and goes into ``additionalModelRequestFields``.
TOP_LEVEL_FIELDS = frozenset(
    {
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "inferenceConfig",
        "performanceConfig",
        "promptVariables",
        "requestMetadata",
        "serviceTier",
        "toolConfig",
    }
)

SYSTEM_ROLES = frozenset({"system", "developer"})
_DATA_URL = re.compile(r"data:(?P<media_type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_HOST_REGION = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
_PARAMETER = "value_error.provider_parameter"

Loc = tuple[str | int, ...]


# --- configuration and credentials -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BedrockSpec(ProviderSpec):
    """The Bedrock row with the region its requests are signed for."""

    region: str = DEFAULT_REGION


def region_from(environ: Mapping[str, str]) -> str:
    for name in REGION_ENV:
        value = environ.get(name, "").strip()
        if value:
            if not _REGION.fullmatch(value):
                raise ValueError(f"{name}={value!r} is not an AWS region name")
            return value
    return DEFAULT_REGION


def configure(spec: ProviderSpec, environ: Mapping[str, str]) -> ProviderSpec:
    """The registry row, with the region from the environment and, unless the endpoint variable
    overrides it, the region's endpoint."""
    region = region_from(environ)
    base_url = spec.base_url
    if not environ.get(ENDPOINT_ENV):
        base_url = f"https://bedrock-runtime.{region}.amazonaws.com"
    values = {f.name: getattr(spec, f.name) for f in fields(ProviderSpec)}
    values["base_url"] = base_url
    return BedrockSpec(**values, region=region)


def credential_from_env(environ: Mapping[str, str]) -> str | None:
    """IAM keys from the environment, in the ``ACCESS:SECRET[:TOKEN]`` form :func:`parse_key`
    reads (the Bedrock API key variable is the row's ``key_env`` and is looked at first)."""
    access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return None
    token = environ.get("AWS_SESSION_TOKEN")
    return f"{access}:{secret}:{token}" if token else f"{access}:{secret}"


def parse_key(value: str) -> AwsCredentials | str:
    """A Bedrock credential: IAM keys as JSON ``{"aws_access_key_id", "aws_secret_access_key",
    "aws_session_token"?}`` or ``ACCESS:SECRET[:TOKEN]``; anything else is a Bedrock API key
    (base64, so it never contains ``:``), returned as the bearer string."""
    text = value.strip()
    if text.startswith("{"):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if not (
            isinstance(parsed, dict)
            and isinstance(parsed.get("aws_access_key_id"), str)
            and isinstance(parsed.get("aws_secret_access_key"), str)
        ):
            raise BadRequest(
                'the bedrock key is JSON but not {"aws_access_key_id", '
                '"aws_secret_access_key", "aws_session_token"?}'
            )
        token = parsed.get("aws_session_token")
        return AwsCredentials(
            parsed["aws_access_key_id"],
            parsed["aws_secret_access_key"],
            str(token) if token else None,
        )
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise BadRequest(
                "the bedrock key is not ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]"
            )
        return AwsCredentials(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    return text


def _key_secrets(value: str | None) -> tuple[str, ...]:
    """Every part of a credential that must never appear in an error message."""
    if not value:
        return ()
    try:
        parsed = parse_key(value)
    except BadRequest:
        return (value,)
    if isinstance(parsed, str):
        return (parsed,)
    return tuple(s for s in (parsed.secret_access_key, parsed.session_token) if s)


def _refuse(spec: ProviderSpec, loc: Loc, what: str) -> InvalidRequest:
    return InvalidRequest.at(loc, f"provider '{spec.name}' (Bedrock Converse) {what}", _PARAMETER)


# --- request ------------------------------------------------------------------------------------


def _image_block(part: dict[str, Any], loc: Loc, spec: ProviderSpec) -> dict[str, Any]:
    image = part.get("image_url") or {}
    url = str(image.get("url") or "")
    if image.get("detail") not in (None, "auto"):
        raise _refuse(spec, (*loc, "image_url", "detail"), "has no image detail setting")
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _refuse(
            spec,
            (*loc, "image_url", "url"),
            "takes images only as base64 data URLs (chatgate does not fetch URLs)",
        )
    image_format = IMAGE_FORMATS.get(match["media_type"].lower())
    if image_format is None:
        raise _refuse(
            spec,
            (*loc, "image_url", "url"),
            f"takes images of types {', '.join(sorted(set(IMAGE_FORMATS)))}",
        )
    return {"image": {"format": image_format, "source": {"bytes": match["data"]}}}


def _content_blocks(
    content: str | list[dict[str, Any]] | None, loc: Loc, spec: ProviderSpec
) -> list[dict[str, Any]]:
    """v4 content as Converse blocks; empty text is left out (Bedrock rejects blank text)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, (*loc, "content", n), spec))
        else:
            raise _refuse(spec, (*loc, "content", n, "type"), f"has no content part '{kind}'")
    return blocks


def _tool_input(arguments: str, loc: Loc, spec: ProviderSpec) -> Any:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise _refuse(spec, loc, "needs tool call arguments that are a JSON object (sent as input)")
    return value


def _reasoning_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block.get("data") or ""}}
    text: dict[str, Any] = {"text": block.get("thinking") or ""}
    if block.get("signature"):
        text["signature"] = block["signature"]
    return {"reasoningContent": {"reasoningText": text}}


def _assistant_blocks(message: Message, loc: Loc, spec: ProviderSpec) -> list[dict[str, Any]]:
    # Reasoning goes back first and unchanged: Claude on Bedrock requires its signed thinking
    # on the assistant turn that made a tool call.
    blocks = [_reasoning_block(b) for b in message.thinking or ()]
    blocks += _content_blocks(message.content, loc, spec)
    for n, call in enumerate(message.tool_calls or ()):
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call.id,
                    "name": call.name,
                    "input": _tool_input(
                        call.arguments, (*loc, "tool_calls", n, "function", "arguments"), spec
                    ),
                }
            }
        )
    return blocks


def _tool_result(message: Message, loc: Loc, spec: ProviderSpec) -> dict[str, Any]:
    if not message.tool_call_id:
        raise _refuse(spec, (*loc, "tool_call_id"), "needs the tool_call_id of a tool message")
    content: list[dict[str, Any]]
    if isinstance(message.content, str):
        try:
            parsed = orjson.loads(message.content)
        except orjson.JSONDecodeError:
            parsed = None
        content = [{"json": parsed}] if isinstance(parsed, dict) else [{"text": message.content}]
    else:
        content = _content_blocks(message.content, loc, spec)
    return {"toolResult": {"toolUseId": message.tool_call_id, "content": content}}


def _conversation(
    messages: tuple[Message, ...], spec: ProviderSpec
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """(``system`` blocks, alternating ``messages``, whether any tool blocks were sent)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    tool_blocks = False
    for i, message in enumerate(messages):
        loc: Loc = ("body", "messages", i)
        role = message.role
        if message.name is not None and role in ("user", "assistant"):
            raise _refuse(spec, (*loc, "name"), "has no participant names on messages")
        if role in SYSTEM_ROLES:
            for block in _content_blocks(message.content, loc, spec):
                if "text" not in block:
                    raise _refuse(spec, (*loc, "content"), "takes only text in system messages")
                system.append(block)
            continue
        if role == "tool":
            role, blocks = "user", [_tool_result(message, loc, spec)]
            tool_blocks = True
        elif role == "user":
            blocks = _content_blocks(message.content, loc, spec)
        elif role == "assistant":
            blocks = _assistant_blocks(message, loc, spec)
            tool_blocks = tool_blocks or bool(message.tool_calls)
        else:
            raise _refuse(spec, (*loc, "role"), f"has no message role '{role}'")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns, tool_blocks


def _tool_config(call: ChatCall, spec: ProviderSpec, tool_blocks: bool) -> dict[str, Any] | None:
    tools = call.config.tools
    if not tools:
        return None
    choice = call.tool_choice
    if choice == "none":
        # Converse has no "none" choice: leaving the tools out is the same request, unless the
        # conversation holds toolUse/toolResult blocks, which Bedrock accepts only with tools.
        if tool_blocks:
            raise _refuse(
                spec,
                ("body", "tool_choice"),
                "has no tool_choice 'none' for a conversation that contains tool calls",
            )
        return None
    specs = []
    for n, tool in enumerate(tools):
        if tool.strict:
            raise _refuse(
                spec, ("body", "model_config", "tools", n, "strict"), "has no strict tool schemas"
            )
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            entry["description"] = tool.description
        entry["inputSchema"] = {"json": tool.parameters or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": entry})
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    elif choice is not None:
        raise _refuse(spec, ("body", "tool_choice"), f"has no tool_choice {choice!r}")
    return config


def _reasoning(call: ChatCall, spec: ProviderSpec) -> tuple[dict[str, Any], int | None]:
    """(``additionalModelRequestFields`` for reasoning_effort, the thinking budget if any)."""
    effort = call.config.reasoning_effort
    model = call.config.model
    if effort is None:
        return {}, None
    loc: Loc = ("body", "model_config", "reasoning_effort")
    if "anthropic." in model:
        if isinstance(effort, int):
            budget = effort
        elif effort in THINKING_BUDGETS:
            budget = THINKING_BUDGETS[effort]
        else:
            raise _refuse(
                spec, loc, f"takes reasoning_effort as a budget or {', '.join(THINKING_BUDGETS)}"
            )
        return {"thinking": {"type": "enabled", "budget_tokens": budget}}, budget
    if "openai." in model and effort in ("low", "medium", "high"):
        return {"reasoning_effort": effort}, None
    raise _refuse(spec, loc, f"has no reasoning_effort {effort!r} for model '{model}'")


def _refuse_unsupported(call: ChatCall, spec: ProviderSpec) -> None:
    config = call.config
    if config.presence_penalty != 0:
        raise _refuse(spec, ("body", "model_config", "presence_penalty"), "has no presence_penalty")
    if config.frequency_penalty != 0:
        raise _refuse(
            spec, ("body", "model_config", "frequency_penalty"), "has no frequency_penalty"
        )
    if config.seed is not None:
        raise _refuse(spec, ("body", "model_config", "seed"), "has no seed")
    response_format = call.response_format or config.response_format
    if response_format is not None and response_format.get("type") != "text":
        loc: Loc = (
            ("body", "response_format")
            if call.response_format
            else ("body", "model_config", "response_format")
        )
        raise _refuse(spec, loc, "has no JSON mode (response_format); describe the JSON in a tool")


def build_body(call: ChatCall, spec: ProviderSpec) -> dict[str, Any]:
    config = call.config
    _refuse_unsupported(call, spec)
    system, messages, tool_blocks = _conversation(call.messages, spec)
    body: dict[str, Any] = {}
    additional: dict[str, Any] = {}
    for key, value in config.other.items():
        if key in TOP_LEVEL_FIELDS:
            body[key] = value
        elif key not in ("messages", "system", "modelId", "stream"):
            additional[key] = value
    if isinstance(body.get("additionalModelRequestFields"), dict):
        additional = {**body["additionalModelRequestFields"], **additional}
    body["messages"] = messages
    if system:
        body["system"] = system
    inference: dict[str, Any] = dict(body.get("inferenceConfig") or {})
    reasoning, budget = _reasoning(call, spec)
    max_tokens = config.max_tokens
    if max_tokens == -1 and budget is not None:
        # Claude counts thinking in maxTokens and needs it above the budget: the model maximum.
        max_tokens = max_output_tokens(config.model.split("anthropic.", 1)[1])
    if budget is not None and max_tokens <= budget:
        raise _refuse(
            spec,
            ("body", "model_config", "max_tokens"),
            f"(Claude) counts thinking in max_tokens: max_tokens ({max_tokens}) must exceed the "
            f"thinking budget ({budget}) of reasoning_effort",
        )
    if max_tokens != -1:
        inference["maxTokens"] = max_tokens
    # Only values that differ from v4's defaults are sent: newer Claude models refuse
    # temperature and topP together, and v4's defaults are not a request for anything.
    if config.temperature != 1:
        inference["temperature"] = config.temperature
    if config.top_p != 1:
        inference["topP"] = config.top_p
    if config.stop:
        inference["stopSequences"] = [config.stop] if isinstance(config.stop, str) else config.stop
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(call, spec, tool_blocks)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    additional.update(reasoning)
    if additional:
        body["additionalModelRequestFields"] = additional
    if call.user is not None:
        body["requestMetadata"] = {**(body.get("requestMetadata") or {}), "user": call.user}
    return body


# --- the wire -----------------------------------------------------------------------------------


class BedrockConverseWire:
    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        base_url = (call.base_url or spec.base_url or "").rstrip("/")
        operation = "converse-stream" if call.stream else "converse"
        model = quote(call.config.model, safe="")
        url = f"{base_url}/model/{model}/{operation}"
        body = build_body(call, spec)
        headers = {"Content-Type": "application/json"}
        if call.stream:
            headers["Accept"] = "application/vnd.amazon.eventstream"
        if call.api_key:
            credential = parse_key(call.api_key)
            if isinstance(credential, str):
                headers["Authorization"] = f"Bearer {credential}"
            else:
                signed = sign(
                    "POST",
                    url,
                    headers,
                    orjson.dumps(body),
                    credentials=credential,
                    region=_region(spec, url),
                    service=SERVICE,
                    now=self._clock(),
                )
                headers.update(signed.headers)
        return Upstream(url=url, body=body, headers=headers)

    def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        secrets = _key_secrets(call.api_key)
        if call.num_samples == 1:
            return _sample(http, upstream, call, spec, 0, secrets)
        return merged_samples(
            lambda i: _sample(http, upstream, call, spec, i, secrets), call.num_samples, spec.origin
        )


def _region(spec: ProviderSpec, url: str) -> str:
    if isinstance(spec, BedrockSpec):
        return spec.region
    match = _HOST_REGION.search(urlsplit(url).hostname or "")
    return match.group(1) if match else DEFAULT_REGION


def _scrubbed(error: ProviderError, secrets: tuple[str, ...]) -> ProviderError:
    for secret in secrets:
        error.message = error.message.replace(secret, "[REDACTED]")
    return error


def _post(
    http: aiohttp.ClientSession,
    upstream: Upstream,
    *,
    origin: str,
    stream: bool,
    secrets: tuple[str, ...],
) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """The shared POST (retries, timeouts) of the signed bytes to the signed URL as it is
    (``encoded``: not re-quoted, or the signature would not match); Bedrock's errors carry their
    type in ``x-amzn-ErrorType``."""

    def parse_error(response: aiohttp.ClientResponse, raw: bytes) -> ProviderError:
        return _scrubbed(
            provider_error(
                response.headers.get("x-amzn-ErrorType"),
                error_text(raw, response.status),
                origin,
                response.status,
            ),
            secrets,
        )

    return _http.post(
        http,
        yarl.URL(upstream.url, encoded=True),
        upstream.body,
        upstream.headers,
        origin=origin,
        stream=stream,
        parse_error=parse_error,
    )


async def _sample(
    http: aiohttp.ClientSession,
    upstream: Upstream,
    call: ChatCall,
    spec: ProviderSpec,
    index: int,
    secrets: tuple[str, ...],
) -> AsyncGenerator[StreamEvent, None]:
    if call.stream:
        async for event in _stream(http, upstream, spec, index, secrets):
            yield event
        return
    async with _post(http, upstream, origin=spec.origin, stream=False, secrets=secrets) as response:
        raw = await response.read()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProviderError(
            f"{spec.origin} answered with a body that is not JSON", status=502, origin=spec.origin
        ) from None
    for event in events_from_response(payload, index):
        yield event


async def _stream(
    http: aiohttp.ClientSession,
    upstream: Upstream,
    spec: ProviderSpec,
    index: int,
    secrets: tuple[str, ...],
) -> AsyncGenerator[StreamEvent, None]:
    decoder = EventStreamDecoder()
    assembler = ResponseAssembler(index)
    failure: ProviderError | None = None
    async with _post(http, upstream, origin=spec.origin, stream=True, secrets=secrets) as response:
        try:
            async for chunk in response.content.iter_any():
                for message in decoder.feed(chunk):
                    kind = message.message_type
                    if kind == "exception":
                        failure = provider_error(
                            str(message.headers.get(":exception-type") or ""),
                            error_text(message.payload, 502),
                            spec.origin,
                        )
                    elif kind == "error":
                        failure = provider_error(
                            str(message.headers.get(":error-code") or ""),
                            str(message.headers.get(":error-message") or "stream error"),
                            spec.origin,
                        )
                    else:
                        data = orjson.loads(message.payload) if message.payload else {}
                        event_type = str(message.headers.get(":event-type") or "")
                        for event in assembler.feed(event_type, data):
                            yield event
                    if failure is not None:
                        break
                if failure is not None:
                    break
        except EventStreamError as exc:
            failure = ProviderConnectionError(
                f"{spec.origin} sent a broken event stream ({exc})", origin=spec.origin
            )
    if failure is not None:
        failure = _scrubbed(failure, secrets)
        if not assembler.started:
            raise failure
        yield RawResponse(assembler.response())
        yield StreamFailed(failure)
        return
    if assembler.started:
        yield RawResponse(assembler.response())
    if not assembler.stopped or decoder.pending:
        error = ProviderConnectionError(
            f"{spec.origin} ended the stream before the message finished", origin=spec.origin
        )
        if not assembler.started:
            raise error
        yield StreamFailed(error)
