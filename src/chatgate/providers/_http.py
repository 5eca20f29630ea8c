"""The one pooled upstream HTTP client and the translation of transport failures."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
import yarl

from chatgate.errors import ProviderConnectionError, ProviderError, ProviderTimeout


def create_session(*, total_timeout: float, connect_timeout: float) -> aiohttp.ClientSession:
    """One session per process: its connection pool is what makes upstream calls cheap."""
    connector = aiohttp.TCPConnector(
        limit=0,  # concurrency is bounded by the server, not by a second queue here
        ttl_dns_cache=300,
        keepalive_timeout=30,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout),
        json_serialize=lambda v: orjson.dumps(v).decode(),
        auto_decompress=True,
        raise_for_status=False,
    )


def error_message(body: bytes, status: int) -> tuple[str, str | None]:
    """The provider's own error text and type, from the common JSON error shapes."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:2000] or f"HTTP {status}"), None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error), (
            str(error["type"]) if error.get("type") else None
        )
    if isinstance(error, str):
        return error, None
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"]), None
    return body.decode("utf-8", "replace")[:2000], None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed provider call is retried before anything reached the client.

    429, 5xx (and Anthropic's 529) answers and connection failures are retried with exponential
    backoff and full jitter, or after the provider's ``Retry-After`` when it sends one; at most
    ``max_retries`` times and ``max_wait`` seconds of waiting in all. Timeouts are not retried (a
    slow provider would multiply the caller's wait), nor is anything once a response began.
    """

    max_retries: int = 2
    max_wait: float = 20.0
    base_delay: float = 0.25
    max_delay: float = 8.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
_policy = RetryPolicy()


#: Per-provider timeouts (seconds), keyed by the provider's origin; others use the session's.
_timeouts: dict[str, float] = {}


def configure_timeouts(timeouts: dict[str, float]) -> None:
    """Set per-provider timeouts (from Settings, at start-up)."""
    global _timeouts
    _timeouts = dict(timeouts)


def configure_retries(policy: RetryPolicy) -> None:
    """Set the process-wide retry policy (from Settings, at start-up)."""
    global _policy
    _policy = policy


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


#: Turns a provider's error answer (the response and its body) into the v4 error.
ErrorParser = Callable[[aiohttp.ClientResponse, bytes], ProviderError]


@asynccontextmanager
async def post(
    http: aiohttp.ClientSession,
    url: str | yarl.URL,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    origin: str,
    stream: bool = False,
    parse_error: ErrorParser | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST JSON; raise the v4 error for transport failures and non-2xx answers.

    Failures before a response is handed out are retried per :class:`RetryPolicy`. A stream may
    run longer than the total timeout: for streams, the timeout bounds each silence between
    reads instead of the whole call.
    """
    timeout = http.timeout
    if origin in _timeouts:
        timeout = aiohttp.ClientTimeout(total=_timeouts[origin], sock_connect=timeout.sock_connect)
    if stream:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.sock_connect, sock_read=timeout.total
        )
    policy = _policy
    data = orjson.dumps(body)
    all_headers = dict(headers)
    if not any(name.lower() == "content-type" for name in headers):
        all_headers["Content-Type"] = "application/json"
    waited = 0.0
    attempt = 0
    while True:
        started = False
        retry_after: float | None = None
        try:
            # Never follow a redirect: the request carries a credential, which must reach only
            # the endpoint it was configured for (aiohttp would forward custom key headers such
            # as api-key or x-api-key to whatever host a redirect names).
            async with http.post(
                url, data=data, headers=all_headers, timeout=timeout, allow_redirects=False
            ) as response:
                if response.status < 300:
                    started = True
                    yield response
                    return
                raw = await response.read()
                error: ProviderError
                if response.status < 400:
                    error = ProviderError(
                        f"{origin} answered with a redirect (HTTP {response.status}); chatgate "
                        "does not follow redirects with credentials: configure the final URL",
                        status=502,
                        origin=origin,
                        kind="provider_redirect_error",
                    )
                elif parse_error is not None:
                    error = parse_error(response, raw)
                else:
                    message, kind = error_message(raw, response.status)
                    error = ProviderError(message, status=response.status, origin=origin, kind=kind)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError:
            raise ProviderTimeout(f"{origin} did not answer in time", origin=origin) from None
        except aiohttp.ClientPayloadError as exc:
            raise ProviderConnectionError(
                f"{origin} sent a broken response: {exc}", origin=origin
            ) from None
        except aiohttp.ClientConnectionError as exc:
            error = ProviderConnectionError(f"could not reach {origin}: {exc}", origin=origin)
            if started:
                raise error from None
        retryable = isinstance(error, ProviderConnectionError) or error.status in RETRY_STATUSES
        delay = retry_after if retry_after is not None else policy.backoff(attempt)
        if not retryable or attempt >= policy.max_retries or waited + delay > policy.max_wait:
            raise error
        await asyncio.sleep(delay)
        waited += delay
        attempt += 1
