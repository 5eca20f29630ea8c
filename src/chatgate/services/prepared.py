"""A chat call ready to run: what the service prepared, and what the stream and the recorder
read from it. Kept apart from services/chat.py so that neither needs the service itself."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from chatgate.domain import ChatCall, LogRecord
from chatgate.errors import ProviderError
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.providers.prices import ModelPrice
from chatgate.streaming import StreamEvent


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
