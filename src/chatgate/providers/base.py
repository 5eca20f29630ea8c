"""What a provider adapter is: a wire protocol that turns a :class:`ChatCall` into events.

One module per wire protocol implements :class:`Wire`; vendors that reuse a protocol (Groq,
DeepSeek, Ollama ...) are rows of the provider table (:data:`chatgate.providers.BUILTIN`, and
the operator's named servers: :func:`chatgate.providers.build_registry`), not classes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from chatgate.domain import ChatCall
from chatgate.streaming import StreamEvent


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A registry row: which wire a provider speaks, where, and how it is authenticated."""

    name: str
    wire: str
    #: Who failed, as the v4 error body's ``origin`` names it ("OpenAI", "Groq" ...).
    origin: str
    base_url: str | None = None
    #: Environment variable holding the key, following the vendor SDK's convention.
    key_env: str | None = None
    #: Environment variable that overrides ``base_url`` (the operator's configuration).
    base_url_env: str | None = None
    requires_key: bool = True


@dataclass(frozen=True, slots=True)
class Upstream:
    """A call ready to send: ``body`` is exactly what goes on the wire and holds no credential."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]


class Wire(Protocol):
    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        """Translate the call; raise InvalidRequest for a parameter this wire cannot honour."""
        ...

    def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run the call (streamed or not, per ``call.stream``) and yield its events in order.

        Errors before the first event are raised as ProviderError; later ones are yielded as
        StreamFailed so the partial output can still be logged.
        """
        ...
