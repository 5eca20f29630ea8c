"""What one log may hold: ``CHATGATE_MAX_LOG_BYTES``, with longer fields truncated visibly, and
only what every database can store (:func:`storable`: no NUL, bounded columns within bounds).

A log's payload fields (inputs, messages, output, raw_output, output_message, provider_request,
provider_response, metadata, tools, error) together take at most ``max_bytes`` as stored (JSON
text or UTF-8). The call itself is not affected: only what is recorded is cut.

The limit is at least the request body limit, so what one request sent (a ``POST /v4/logs``,
or a chat's inputs, messages, metadata and tools) fits whole; what goes over it is a copy
(``provider_request`` repeats the messages; ``provider_response``, ``raw_output`` and
``output_message`` the output) or what a template or a provider produced. So copies are cut
first, then the output, then (only if a template made them larger than a body) the request's
fields. Inside a field only long strings are cut, each ending in
``…[truncated by chatgate: N bytes]`` (N: the bytes cut off), so the field keeps its shape; a
field made of very many small items keeps its first items and ends with a marker item.

The check on an ordinary log is one orjson serialisation of its payload (a few microseconds);
cutting happens only for a log over the limit, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from chatgate.domain import LogRecord

_JSON_FIELDS = (
    "inputs",
    "messages",
    "provider_request",
    "provider_response",
    "output_message",
    "metadata",
    "tools",
)
_TEXT_FIELDS = ("output", "raw_output", "error")
#: The order in which fields are kept: what the request sent (at most a body, so it fits),
#: then the call's output, then copies of those (the provider's request and response, the
#: unstripped output, the output message).
_TIERS = (
    ("inputs", "messages", "metadata", "tools"),
    ("output", "error"),
    ("provider_request", "provider_response", "raw_output", "output_message"),
)
#: Strings at most this long are left whole (cutting them would save little).
_SHORT = 256
#: What every field keeps at least (a marker and its container).
_STUB_BYTES = 128
#: Room kept for the record's other columns (ids, model, times ...).
_RESERVE = 4096

_MARKER = "…[truncated by chatgate: {} bytes]"


def marker(cut_bytes: int) -> str:
    return _MARKER.format(cut_bytes)


def json_size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError:  # integers beyond 64 bits: the standard library writes them
        text = json.dumps(value, ensure_ascii=False, default=str)
        return len(text.encode("utf-8", "surrogatepass"))


def _text_size(value: str | None) -> int:
    return 0 if value is None else len(value.encode("utf-8", "surrogatepass"))


#: The default limit: twice the default body limit (see settings.py).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class LogLimit:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def fits(self, records: Sequence[LogRecord]) -> bool:
        """The cheap check: true when no record can be over the limit."""
        for r in records:  # the fields of _JSON_FIELDS and _TEXT_FIELDS, spelled out for speed
            payload = (
                r.inputs,
                r.messages,
                r.provider_request,
                r.provider_response,
                r.output_message,
                r.metadata,
                r.tools,
            )
            try:
                blob = orjson.dumps(payload)
            except TypeError:
                return False
            if b"\\u0000" in blob or not _storable_scalars(r):
                return False
            size = len(blob)
            for text in (r.output, r.raw_output, r.error):
                if text:
                    if "\x00" in text:
                        return False
                    size += 4 * len(text)  # UTF-8 takes at most 4 bytes a character
            if size > self.max_bytes - _RESERVE:
                return False
        return True

    async def fit(self, records: list[LogRecord]) -> list[LogRecord]:
        """``records`` cut to the limit, off the event loop (call it when ``fits`` is false)."""
        if self.fits(records):
            return records
        return await asyncio.to_thread(self.fit_now, records)

    def fit_now(self, records: Sequence[LogRecord]) -> list[LogRecord]:
        return [self.fit_record(record) for record in records]

    def fit_record(self, record: LogRecord) -> LogRecord:
        record = storable(record)
        sizes = {name: json_size(getattr(record, name)) for name in _JSON_FIELDS}
        sizes.update({name: _text_size(getattr(record, name)) for name in _TEXT_FIELDS})
        budget = self.max_bytes - _RESERVE
        if sum(sizes.values()) <= budget:
            return record
        changes = {
            name: _cut(getattr(record, name), sizes[name], target)
            for name, target in _targets(sizes, budget).items()
            if target < sizes[name]
        }
        return replace(record, **changes)


# --- what every database can store -------------------------------------------------------------

#: What replaces a NUL character: PostgreSQL refuses NUL in text and JSON, and SQLite's LIKE
#: stops at one. The caller's own fields never hold one (api/body.py refuses it); a provider's
#: output can.
NUL_REPLACEMENT = "\ufffd"
#: Bounded columns a provider's answer fills (store/schema.py ``logs``).
_FINISH_REASON_CHARS = 64
_INT32_MAX = 2**31 - 1
_COUNTS = (
    "prompt_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def _storable_scalars(record: LogRecord) -> bool:
    # On every log: plain comparisons, no generator (measured on the hot path).
    reason = record.finish_reason
    if reason is not None and len(reason) > _FINISH_REASON_CHARS:
        return False
    for count in (
        record.prompt_tokens,
        record.output_tokens,
        record.reasoning_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
    ):
        if count is not None and not 0 <= count <= _INT32_MAX:
            return False
    return True


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def storable(record: LogRecord) -> LogRecord:
    """``record`` as every backend can store it, whatever the provider answered: NUL characters
    replaced, ``finish_reason`` cut to its column, token counts held to the column's range (a
    count no model reaches; the answer itself keeps the provider's numbers)."""
    changes: dict[str, Any] = {
        name: _without_nul(getattr(record, name)) for name in (*_JSON_FIELDS, *_TEXT_FIELDS)
    }
    if record.finish_reason is not None:
        changes["finish_reason"] = _without_nul(record.finish_reason)[:_FINISH_REASON_CHARS]
    for name in _COUNTS:
        count = getattr(record, name)
        if count is not None:
            changes[name] = min(max(count, 0), _INT32_MAX)
    return replace(record, **changes)


def _targets(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """How many bytes each field may keep. Every field keeps at least a marker; then what the
    request sent is kept first, then the output, and copies get what is left. Inside a tier the
    smallest fields are kept whole and the others share equally."""
    floors = {name: min(size, _STUB_BYTES) for name, size in sizes.items()}
    remaining = budget - sum(floors.values())
    targets = dict(floors)
    for tier in _TIERS:
        extra = {name: sizes[name] - floors[name] for name in tier}
        for name, granted in _share(extra, remaining).items():
            targets[name] += granted
            remaining -= granted
    return targets


def _share(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Water-filling: the smallest fields are kept whole, the others get equal shares."""
    targets = {}
    remaining = max(budget, 0)
    ordered = sorted(sizes.items(), key=lambda item: item[1])
    for i, (name, size) in enumerate(ordered):
        share = remaining // (len(ordered) - i)
        targets[name] = min(size, share)
        remaining -= targets[name]
    return targets


def _cut(value: Any, size: int, target: int) -> Any:
    if value is None or size <= target:
        return value
    if isinstance(value, str):
        return cut_text(value, target)
    return cut_json(value, size, target)


def cut_text(text: str, target: int) -> str:
    """``text`` in at most ``target`` bytes of UTF-8, the marker included."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= target:
        return text
    keep = max(target - len(marker(len(data)).encode()), 0)
    kept = data[:keep].decode("utf-8", "ignore")  # "ignore": a character cut in half goes
    return kept + marker(len(data) - _text_size(kept))


def cut_json(value: Any, size: int, target: int) -> Any:
    """``value`` (JSON) in about ``target`` bytes: long strings cut, else a prefix of items."""
    if isinstance(value, str):
        return cut_text(value, target)
    lengths: list[int] = []
    _long_strings(value, lengths)
    # Cut the long strings to a common length; retry tighter if JSON escapes made the result
    # bigger than counted.
    allowance = target
    for _ in range(3):
        limit = _common_length(lengths, size, allowance)
        if limit is None:
            break
        result = _with_strings_cut(value, limit)
        result_size = json_size(result)
        if result_size <= target:
            return result
        allowance -= result_size - target + 64
    return _prefix(value, target)


def _long_strings(value: Any, into: list[int]) -> None:
    """The UTF-8 sizes of the strings in ``value`` longer than ``_SHORT`` characters."""
    if isinstance(value, str):
        if len(value) > _SHORT:
            into.append(_text_size(value))
    elif isinstance(value, dict):
        for item in value.values():
            _long_strings(item, into)
    elif isinstance(value, list):
        for item in value:
            _long_strings(item, into)


def _common_length(sizes: list[int], size: int, target: int) -> int | None:
    """The largest L such that cutting every string over L bytes to L bytes (its marker
    included) brings ``value`` to ``target``; None when even short cuts would not."""
    if not sizes:
        return None
    room = target - (size - sum(sizes))  # what the long strings may take together
    kept = 0  # bytes of the strings kept whole, smallest first
    ordered = sorted(sizes)
    for i, length in enumerate(ordered):
        limit = (room - kept) // (len(ordered) - i)
        if limit < _SHORT:
            return None
        if limit < length:
            return limit
        kept += length
    return None  # everything fits whole: not reached when the value is over its target


def _with_strings_cut(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cut_text(value, limit) if len(value) > _SHORT else value
    if isinstance(value, dict):
        return {key: _with_strings_cut(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_strings_cut(item, limit) for item in value]
    return value


def _prefix(value: Any, target: int) -> Any:
    """The first items of a list or dict that fit, then a marker item; else just a marker."""
    budget = target - _STUB_BYTES
    if isinstance(value, list):
        kept: list[Any] = []
        used = 0
        for item in value:
            used += json_size(item) + 1
            if used > budget:
                break
            kept.append(item)
        cut = json_size(value) - json_size(kept)
        return [*kept, _marker_item(value, cut)]
    if isinstance(value, dict):
        kept_items: dict[str, Any] = {}
        used = 0
        for key, item in value.items():
            used += json_size(key) + json_size(item) + 2
            if used > budget:
                break
            kept_items[key] = item
        cut = json_size(value) - json_size(kept_items)
        return {**kept_items, "chatgate_truncated": marker(cut)}
    return marker(json_size(value))


def _marker_item(items: list[Any], cut: int) -> Any:
    """A last item shaped like the others: messages stay messages."""
    first = items[0] if items else None
    if isinstance(first, dict) and "role" in first:
        return {"role": "system", "content": marker(cut)}
    if isinstance(first, dict):
        return {"chatgate_truncated": marker(cut)}
    return marker(cut)
