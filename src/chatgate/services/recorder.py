"""Turning a finished call into log records, with every credential removed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from chatgate.domain import LogRecord, Sample
from chatgate.providers.prices import ModelPrice

REDACTED = "[REDACTED]"
#: Key-like tokens some providers echo back in error messages (e.g. "sk-ab***yz").
_MASKED_KEY = re.compile(r"\b(?:sk|gsk|key|cg)[-_][A-Za-z0-9*_\-]{6,}")


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value``, or a copy of it in which no string contains any of ``secrets``."""
    if not secrets:
        return value
    try:
        # Fast path, taken on nearly every call: one C-speed serialisation shows there is
        # nothing to remove, and the value is returned as it is.
        blob = orjson.dumps(value)
    except TypeError:
        return _scrub(value, secrets)
    if any(secret and secret.encode() in blob for secret in secrets):
        return _scrub(value, secrets)
    return value


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def scrub_message(message: str, secrets: Sequence[str]) -> str:
    """Error text: remove the exact keys and anything that looks like a (masked) key."""
    return _MASKED_KEY.sub(REDACTED, scrub(message, secrets))


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
