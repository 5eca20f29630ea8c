"""Humanloop's ``default`` template language: ``{{ name }}`` placeholders, nothing else.

Every placeholder must have an input (the missing ones are reported together); non-string values
are inserted as compact JSON. Inputs are never interpreted, so they cannot inject template syntax.

The text is split once by the placeholder pattern (in C), each distinct input is converted once
and its text put in place by reference, and the size of the result is summed *before* anything
is joined: a template of many placeholders times a large input (a multiplication of sizes) is
refused without allocating it. The cost is linear in the template's length; the caller decides where it runs
(``templating/__init__.py``: small templates in process, large ones in a renderer process).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from chatgate.templating.problems import Kind, TemplateProblem

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library writes them exactly.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render_default(texts: Sequence[str], inputs: Mapping[str, Any], max_chars: int) -> list[str]:
    """Render every text; the results together hold at most ``max_chars`` characters."""
    values: dict[str, str] = {}
    missing: dict[str, None] = {}  # ordered set: first use first
    pieces: list[list[str]] = []
    total = 0
    for text in texts:
        parts: list[str] = PLACEHOLDER.split(text)  # literal, name, literal, name, ..., literal
        for i in range(1, len(parts), 2):
            name = parts[i]
            value = values.get(name)
            if value is None:
                if name not in inputs:
                    missing[name] = None
                    continue
                value = values[name] = as_text(inputs[name])
            parts[i] = value  # a reference: nothing is copied before the size is allowed
        total += sum(map(len, parts))
        pieces.append(parts)
    if missing:
        raise TemplateProblem(
            Kind.MISSING, "missing inputs used by the chat template", names=tuple(missing)
        )
    if total > max_chars:
        raise TemplateProblem(
            Kind.REFUSED,
            f"the rendered template would be {total} characters, over the limit of "
            f"{max_chars} (CHATGATE_MAX_BODY_BYTES)",
        )
    return ["".join(parts) for parts in pieces]
