"""The edge rules for the values a request carries: what each number, text and time may be so
that the store, orjson and the providers can hold it (docs/compat.md, "Numbers, times and text a
request may hold"). Every request model uses these types; a value outside them is a 422 before
anything is called or stored.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from chatgate import moments

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

#: Any integer a client sends is a signed 64-bit integer: what SQLite, PostgreSQL's bigint,
#: orjson and the providers' parsers all hold. Python would take any size and fail later.
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
#: Token counts (stored in 32-bit integer columns on PostgreSQL).
TokenCount = Annotated[int, Field(ge=0, le=INT32_MAX)]
#: ``max_tokens``: -1 means "the provider's maximum" (the v4 description).
MaxTokens = Annotated[int, Field(ge=-1, le=INT32_MAX)]
#: An integer ``reasoning_effort`` is a thinking budget in tokens; Gemini reads -1 as dynamic.
ThinkingBudget = Annotated[int, Field(ge=-1, le=INT32_MAX)]

#: Text kept in a bounded column (store/schema.py): PostgreSQL refuses a longer value (SQLite
#: would keep it), and for a chat call that refusal came after the provider was paid.
ProviderName = Annotated[str, Field(max_length=64)]
ShortId = Annotated[str, Field(max_length=100)]  # source_datapoint_id
Label = Annotated[str, Field(max_length=200)]  # model, environment, feedback type
Name = Annotated[str, Field(max_length=500)]  # project, reference ids, source, user, config name


def _header_safe(value: str) -> str:
    if value.isprintable():
        return value
    raise PydanticCustomError(
        "header_value", "must be printable text: it is sent in an HTTP header or URL"
    )


#: A provider key or endpoint from ``provider_api_keys``: it goes into an HTTP header (or the
#: URL), where a control character is refused by the HTTP client, after the call was prepared.
HeaderSafe = Annotated[str, AfterValidator(_header_safe)]


def _json_problem(value: Any) -> tuple[list[Any], str, str] | None:
    """(path, message, type) of the first value that cannot be stored and sent on as JSON, or
    None. Decoded JSON has nothing else, but a ``.prompt`` file's YAML has dates, bytes, sets
    and non-string keys. Depth is bounded by the parsers (~200 levels), so recursion is."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return None
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return [key], "a key that is not a string", "json_type"
            if (found := _json_problem(item)) is not None:
                found[0].insert(0, key)
                return found
        return None
    if kind is list:
        for index, item in enumerate(value):
            if (found := _json_problem(item)) is not None:
                found[0].insert(0, index)
                return found
        return None
    if kind is int:
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return [], "an integer outside the signed 64-bit range", "int64_range"
    if kind is float:
        if math.isfinite(value):
            return None
        return [], "NaN or Infinity, which JSON does not have", "finite_number"
    return [], f"a value of type {kind.__name__}, which JSON does not have", "json_type"


def _all_storable(value: dict[str, Any]) -> bool:
    """_json_problem(value) is None, in one flat loop (the common case, on every chat call:
    ~1-2 us for a nested 10-value ``inputs``). Decoded JSON has exact types, hence ``is``."""
    stack: list[Any] = [value]
    while stack:
        container = stack.pop()
        if type(container) is dict:
            for key in container:
                if type(key) is not str:
                    return False
            items = container.values()
        else:
            items = container
        for item in items:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not INT64_MIN <= item <= INT64_MAX:
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif kind is dict or kind is list:
                stack.append(item)
            else:
                return False
    return True


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    if not value or _all_storable(value):
        return value
    found = _json_problem(value)
    if found is None:  # unreachable: the two walks agree
        return value
    path, message, kind = found
    where = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)
    raise PydanticCustomError(kind, "{message} at {where}", {"message": message, "where": where})


#: A free-form JSON object (``inputs``, ``metadata``, ``other``, tool ``parameters`` ...): any
#: JSON, but every integer a signed 64-bit one and no NaN/Infinity (the body parser takes both),
#: and nothing JSON does not have (a .prompt file's YAML can), checked before anything is
#: called or stored.
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


def _representable(value: datetime) -> datetime:
    checked = moments.checked(value)
    if checked is None:
        raise PydanticCustomError(
            "datetime_range", "expected a time between 0001-01-01 and 9999-12-31 in UTC"
        )
    return checked


#: A time a client sends: no zone means UTC; its UTC instant must lie in years 1 to 9999, so
#: it can be stored and shown again. Always an aware UTC datetime once validated.
Moment = Annotated[datetime, AfterValidator(_representable)]
