"""The price table: what a call cost, from its usage. Data, not code.

Prices are USD per 1,000,000 tokens, per provider and model name (or name prefix: the longest
matching prefix wins, so ``gpt-4o-2024-08-06`` is priced as ``gpt-4o`` and ``gpt-4o-mini`` as
itself). ``input`` prices prompt tokens and ``output`` generated tokens (reasoning tokens are
generated tokens on every provider chatgate speaks). An operator adds or overrides entries with a
JSON file of the same shape (``CHATGATE_PRICES_FILE``). A model with no entry has no cost: the
log's ``prompt_cost``/``output_cost`` stay null, never zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatgate.domain import Usage

_BUILTIN = Path(__file__).with_name("prices.json")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float

    def cost(self, usage: Usage) -> tuple[float, float]:
        return (
            usage.prompt_tokens * self.input / 1_000_000,
            usage.generation_tokens * self.output / 1_000_000,
        )


class PriceTable:
    def __init__(self, override_file: Path | None = None) -> None:
        self._prices: dict[str, dict[str, ModelPrice]] = {}
        self._merge(json.loads(_BUILTIN.read_text()))
        if override_file is not None:
            self._merge(json.loads(Path(override_file).read_text()))

    def _merge(self, data: dict[str, Any]) -> None:
        for provider, models in data.items():
            if provider.startswith("_"):
                continue
            table = self._prices.setdefault(provider, {})
            for model, price in models.items():
                table[model] = ModelPrice(float(price["input"]), float(price["output"]))

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        table = self._prices.get(provider, {})
        if model in table:
            return table[model]
        matches = [name for name in table if model.startswith(name)]
        return table[max(matches, key=len)] if matches else None
