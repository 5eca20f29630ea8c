"""The one pooled upstream HTTP client and the translation of transport failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

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


@asynccontextmanager
async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    origin: str,
    stream: bool = False,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST JSON; raise the v4 error for transport failures and non-2xx answers.

    A stream may run longer than the total timeout: for streams, the timeout bounds each silence
    between reads instead of the whole call.
    """
    timeout = http.timeout
    if stream:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.sock_connect, sock_read=timeout.total
        )
    try:
        async with http.post(
            url,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout,
        ) as response:
            if response.status >= 400:
                raw = await response.read()
                message, kind = error_message(raw, response.status)
                raise ProviderError(message, status=response.status, origin=origin, kind=kind)
            yield response
    except TimeoutError:
        raise ProviderTimeout(f"{origin} did not answer in time", origin=origin) from None
    except aiohttp.ClientConnectionError as exc:
        raise ProviderConnectionError(f"could not reach {origin}: {exc}", origin=origin) from None
    except aiohttp.ClientPayloadError as exc:
        raise ProviderConnectionError(
            f"{origin} sent a broken response: {exc}", origin=origin
        ) from None
