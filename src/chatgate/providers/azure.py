"""Azure OpenAI: the OpenAI Chat Completions wire with Azure's URL, auth and extra fields.

``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}`` with
the key in the ``api-key`` header (never ``Authorization``, never the URL). The v4 ``model`` is the
deployment name. The body, the translation of replies and streams and the finish-reason table
are :mod:`chatgate.providers.openai_chat`'s; this module adds only what Azure does differently:

* the endpoint is the caller's ``provider_api_keys.openai_azure_endpoint`` (guarded by
  :mod:`chatgate.providers.url_guard`) or the operator's ``AZURE_OPENAI_ENDPOINT``;
* ``model`` stays in the body, as the openai SDK's ``AzureOpenAI`` sends it: Azure routes by the
  deployment in the path and ignores it;
* replies carry ``prompt_filter_results`` and per-choice ``content_filter_results``; a stream
  opens with a chunk that has only ``prompt_filter_results`` (empty ``id``/``model``,
  ``created: 0``), which must not become the reassembled completion's identity;
* error bodies give ``error.code`` (``"429"``, ``"DeploymentNotFound"``, ``"content_filter"``)
  rather than ``error.type``, so the v4 ``type`` comes from the HTTP status.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import aiohttp

from chatgate.domain import ChatCall
from chatgate.errors import BadRequest, ProviderError
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.providers.openai_chat import OpenAIChatWire, StreamAssembler, build_body
from chatgate.providers.url_guard import (
    CallerURLSpec,
    UpstreamPolicy,
    check_url,
    pinned_session,
)
from chatgate.streaming import StreamEvent

#: The latest GA data-plane inference version when this was written; OPENAI_API_VERSION (the
#: variable the openai SDK's AzureOpenAI reads) overrides it.
DEFAULT_API_VERSION = "2024-10-21"
API_VERSION_ENV = "OPENAI_API_VERSION"
ENDPOINT_KEY = "openai_azure_endpoint"

#: Deployments are named by their owner, so the model is unknown; names starting like OpenAI's
#: reasoning models get ``max_completion_tokens`` (those models refuse ``max_tokens``).
REASONING_DEPLOYMENT_PREFIXES = ("o1", "o3", "o4", "gpt-5")

#: Azure's HTTP status -> v4 error type (Azure's bodies carry a ``code``, seldom a ``type``).
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}

#: Top-level chunk fields that name the completion; Azure's filter-only first chunk has them empty.
_IDENTITY = ("id", "model", "created", "system_fingerprint")


@dataclass(frozen=True, slots=True)
class AzureSpec(CallerURLSpec):
    """The ``openai_azure`` row: where the endpoint may come from, and the API version."""

    api_version: str = DEFAULT_API_VERSION

    def configured(self, environ: Mapping[str, str], allowed_upstream: Sequence[str]) -> AzureSpec:
        """This row with the operator's API version and upstream allow-list."""
        return replace(
            self,
            api_version=environ.get(API_VERSION_ENV) or self.api_version,
            upstream_policy=UpstreamPolicy.from_entries(allowed_upstream),
        )


SPEC = AzureSpec(
    "openai_azure",
    wire="openai_azure",
    origin="Azure OpenAI",
    key_env="AZURE_OPENAI_API_KEY",
    base_url_env="AZURE_OPENAI_ENDPOINT",
    endpoint_key=ENDPOINT_KEY,
)


class AzureStreamAssembler(StreamAssembler):
    """OpenAI's assembler plus Azure's filter annotations, so the reassembled completion equals
    the non-streamed one: ``prompt_filter_results`` and, per choice, the last chunk's
    ``content_filter_results`` (Azure sends the results for the text so far)."""

    def __init__(self) -> None:
        super().__init__()
        self._identity: dict[str, Any] = {}
        self._filters: dict[int, Any] = {}

    def events(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        for key in _IDENTITY:
            if chunk.get(key) and not self._identity.get(key):
                self._identity[key] = chunk[key]
        for choice in chunk.get("choices") or []:
            if choice.get("content_filter_results"):
                self._filters[int(choice.get("index", 0))] = choice["content_filter_results"]
        return super().events(chunk)

    def completion(self) -> dict[str, Any]:
        completion = super().completion()
        completion.update(self._identity)
        for choice in completion["choices"]:
            if choice["index"] in self._filters:
                choice["content_filter_results"] = self._filters[choice["index"]]
        return completion


def _spec(spec: ProviderSpec) -> AzureSpec:
    return spec if isinstance(spec, AzureSpec) else SPEC


class AzureOpenAIWire(OpenAIChatWire):
    def new_assembler(self) -> StreamAssembler:
        return AzureStreamAssembler()

    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        azure = _spec(spec)
        endpoint = call.base_url or azure.base_url
        if not endpoint:
            raise BadRequest(
                f"no endpoint for provider '{spec.name}': pass provider_api_keys.{ENDPOINT_KEY} "
                f"(https://<resource>.openai.azure.com) with provider_api_keys.{spec.name}, save "
                f"one with `chatgate provider-keys set --org NAME {spec.name} --endpoint URL`, "
                f"or set the server's {azure.base_url_env}"
            )
        if self._caller_supplied(call, azure):
            check_url(endpoint, azure.upstream_policy, what=f"provider_api_keys.{ENDPOINT_KEY}")
        body = build_body(call, spec)
        if "max_tokens" in body and call.config.model.startswith(REASONING_DEPLOYMENT_PREFIXES):
            body["max_completion_tokens"] = body.pop("max_tokens")
        deployment = quote(call.config.model, safe="")
        url = (
            f"{endpoint.rstrip('/')}/openai/deployments/{deployment}/chat/completions"
            f"?api-version={quote(azure.api_version, safe='')}"
        )
        headers = {"api-key": call.api_key} if call.api_key else {}
        return Upstream(url=url, body=body, headers=headers)

    async def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        azure = _spec(spec)
        try:
            if self._caller_supplied(call, azure):
                what = f"provider_api_keys.{ENDPOINT_KEY}"
                url = check_url(upstream.url, azure.upstream_policy, what=what)
                async with pinned_session(
                    http, url, azure.upstream_policy, what=what, origin=spec.origin
                ) as pinned:
                    async for event in super().events(pinned, upstream, call, spec):
                        yield event
            else:
                async for event in super().events(http, upstream, call, spec):
                    yield event
        except ProviderError as exc:
            if exc.type == ProviderError.type:
                exc.type = ERROR_TYPES.get(exc.status, ProviderError.type)
            raise

    @staticmethod
    def _caller_supplied(call: ChatCall, spec: AzureSpec) -> bool:
        """The request's endpoint, unless it is the operator's own (then trusted as configured)."""
        return call.base_url_from_caller and call.base_url != spec.base_url
