"""The price table: what a call cost, from its usage. Data, not code.

Prices are USD per 1,000,000 tokens, per provider and model name (or name prefix: the longest
matching prefix wins, so ``gpt-4o-2024-08-06`` is priced as ``gpt-4o`` and ``gpt-4o-mini`` as
itself). An entry has ``input`` and ``output`` prices and may have:

* ``cached_input``: input tokens read from the provider's prompt cache (default: ``input``);
* ``cache_write``: input tokens written to the cache, which Anthropic and Bedrock charge at a
  premium (default: ``input``);
* ``reasoning``: reasoning tokens (default: ``output``, which is how every provider chatgate
  speaks bills them).

``prompt_cost`` prices the uncached input, the cache reads and the cache writes each at its own
price; ``output_cost`` the generated tokens, reasoning at its own price. An operator adds or
replaces entries with a JSON file of the same shape (``CHATGATE_PRICES_FILE``), checked when it
is loaded. A model with no entry has no cost: the log's ``prompt_cost``/``output_cost`` stay
null, never zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatgate.domain import Usage

_BUILTIN = Path(__file__).with_name("prices.json")
_PER_TOKENS = 1_000_000
_REQUIRED = ("input", "output")
_OPTIONAL = ("cached_input", "cache_write", "reasoning")


class PriceFileError(ValueError):
    """A price file that is not valid JSON of the documented shape; says where it is wrong."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None

    def cost(self, usage: Usage) -> tuple[float, float]:
        """(prompt cost, output cost) in USD."""
        read = usage.cache_read_tokens or 0
        written = usage.cache_write_tokens or 0
        reasoning = usage.reasoning_tokens or 0
        # The cache and reasoning counts are parts of the totals; max() keeps a provider that
        # reports inconsistent figures from producing a negative price.
        uncached = max(usage.prompt_tokens - read - written, 0)
        answer = max(usage.generation_tokens - reasoning, 0)
        prompt = (
            uncached * self.input
            + read * _or(self.cached_input, self.input)
            + written * _or(self.cache_write, self.input)
        )
        output = answer * self.output + reasoning * _or(self.reasoning, self.output)
        return prompt / _PER_TOKENS, output / _PER_TOKENS


def _or(price: float | None, default: float) -> float:
    return default if price is None else price


class PriceTable:
    def __init__(self, override_file: Path | None = None) -> None:
        self._prices: dict[str, dict[str, ModelPrice]] = {}
        self._merge(_load(_BUILTIN))
        if override_file is not None:
            self._merge(_load(Path(override_file)))

    def _merge(self, prices: dict[str, dict[str, ModelPrice]]) -> None:
        for provider, models in prices.items():
            self._prices.setdefault(provider, {}).update(models)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        table = self._prices.get(provider, {})
        if model in table:
            return table[model]
        matches = [name for name in table if model.startswith(name)]
        return table[max(matches, key=len)] if matches else None


def _load(path: Path) -> dict[str, dict[str, ModelPrice]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PriceFileError(f"{path}: cannot read the price file: {exc}") from exc
    return parse_prices(data, str(path))


def parse_prices(data: Any, source: str) -> dict[str, dict[str, ModelPrice]]:
    """``{provider: {model: entry}}`` as ModelPrices; keys starting with ``_`` are comments."""
    if not isinstance(data, dict):
        raise PriceFileError(f"{source}: expected an object of providers, got {_kind(data)}")
    table: dict[str, dict[str, ModelPrice]] = {}
    for provider, models in data.items():
        if provider.startswith("_"):
            continue
        if not isinstance(models, dict):
            raise PriceFileError(
                f"{source}: [{provider!r}] must be an object of models, got {_kind(models)}"
            )
        table[provider] = {
            model: _entry(entry, f"{source}: [{provider!r}][{model!r}]")
            for model, entry in models.items()
            if not model.startswith("_")
        }
    return table


def _entry(entry: Any, where: str) -> ModelPrice:
    if not isinstance(entry, dict):
        raise PriceFileError(f"{where} must be an object of prices, got {_kind(entry)}")
    known = _REQUIRED + _OPTIONAL
    unknown = sorted(k for k in entry if k not in known and not k.startswith("_"))
    if unknown:
        raise PriceFileError(f"{where} has unknown keys {unknown}; the keys are {list(known)}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise PriceFileError(f"{where} is missing {' and '.join(missing)}")
    return ModelPrice(**{k: _price(entry[k], f"{where}[{k!r}]") for k in known if k in entry})


def _price(value: Any, where: str) -> float:
    # bool is an int in Python, and JSON has no NaN/Infinity but Python's parser accepts them.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PriceFileError(f"{where} must be a number (USD per 1M tokens), got {value!r}")
    if value < 0:
        raise PriceFileError(f"{where} must not be negative, got {value!r}")
    return float(value)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
