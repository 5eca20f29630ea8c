"""The price table: its arithmetic, the built-in data, and how a bad price file is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatgate.domain import Usage
from chatgate.providers.prices import ModelPrice, PriceFileError, PriceTable, parse_prices

# Per token, not per million, so that the arithmetic below reads plainly.
M = 1_000_000


def test_without_cache_or_reasoning_prices_input_and_output_only() -> None:
    price = ModelPrice(input=2 * M, output=10 * M)
    assert price.cost(Usage(prompt_tokens=7, generation_tokens=3)) == (14.0, 30.0)


def test_cache_reads_writes_and_reasoning_have_their_own_prices() -> None:
    price = ModelPrice(
        input=4 * M, output=10 * M, cached_input=1 * M, cache_write=5 * M, reasoning=20 * M
    )
    usage = Usage(
        prompt_tokens=100,  # 60 uncached + 30 read + 10 written
        generation_tokens=50,  # 40 answer + 10 reasoning
        reasoning_tokens=10,
        cache_read_tokens=30,
        cache_write_tokens=10,
    )
    assert price.cost(usage) == (60 * 4 + 30 * 1 + 10 * 5, 40 * 10 + 10 * 20)


def test_missing_cache_and_reasoning_prices_fall_back_to_input_and_output() -> None:
    price = ModelPrice(input=4 * M, output=10 * M)
    usage = Usage(100, 50, reasoning_tokens=10, cache_read_tokens=30, cache_write_tokens=10)
    assert price.cost(usage) == (100 * 4, 50 * 10)


def test_counts_that_exceed_their_totals_never_make_a_negative_cost() -> None:
    price = ModelPrice(input=1 * M, output=1 * M, cached_input=0.5 * M)
    usage = Usage(prompt_tokens=10, generation_tokens=2, reasoning_tokens=5, cache_read_tokens=12)
    assert price.cost(usage) == (6.0, 5.0)


def test_usage_sums_keep_unreported_counts_unreported() -> None:
    reported = Usage(10, 5, reasoning_tokens=2, cache_read_tokens=4, cache_write_tokens=None)
    silent = Usage(1, 1)
    assert reported + silent == Usage(11, 6, 2, 4, None)
    assert silent + silent == Usage(2, 2)
    assert (reported + silent).to_v4() == {
        "prompt_tokens": 11,
        "generation_tokens": 6,
        "total_tokens": 17,
        "reasoning_tokens": 2,
        "cache_read_tokens": 4,
    }


def test_builtin_table_cache_prices() -> None:
    table = PriceTable()
    sonnet = table.lookup("anthropic", "claude-sonnet-4-20250514")
    assert sonnet == ModelPrice(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    mini = table.lookup("openai", "gpt-4o-mini-2024-07-18")
    assert mini is not None and (mini.cached_input, mini.cache_write) == (0.075, None)
    flash = table.lookup("google", "gemini-2.5-flash")
    assert flash is not None and flash.cached_input == 0.03
    # the longest prefix wins: flash-lite is not priced as flash
    lite = table.lookup("google", "gemini-2.5-flash-lite")
    assert lite is not None and (lite.input, lite.output) == (0.1, 0.4)
    assert table.lookup("openai", "my-finetune") is None


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_an_override_adds_cache_prices_and_replaces_whole_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "_comment": "ours",
            "openai": {
                "gpt-4o": {"input": 1, "output": 2, "_source": "our contract"},
                "my-reasoner": {"input": 1, "output": 2, "cached_input": 0.5, "reasoning": 3},
            },
        },
    )
    table = PriceTable(path)
    assert table.lookup("openai", "gpt-4o") == ModelPrice(1.0, 2.0)  # built-in cached_input gone
    assert table.lookup("openai", "my-reasoner") == ModelPrice(1.0, 2.0, 0.5, None, 3.0)
    assert table.lookup("openai", "gpt-4o-mini") is not None  # untouched built-in entries stay


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", r"cannot read the price file"),
        ([], r"expected an object of providers, got list"),
        ({"openai": ["gpt-4o"]}, r"\['openai'\] must be an object of models, got list"),
        ({"openai": {"gpt-4o": 2.5}}, r"\['openai'\]\['gpt-4o'\] must be an object of prices"),
        ({"openai": {"gpt-4o": {"input": 2.5}}}, r"\['openai'\]\['gpt-4o'\] is missing output"),
        ({"openai": {"m": {}}}, r"\['openai'\]\['m'\] is missing input and output"),
        (
            {"openai": {"m": {"input": 1, "output": -2}}},
            r"\['openai'\]\['m'\]\['output'\] must not be negative, got -2",
        ),
        (
            {"openai": {"m": {"input": "2.5", "output": 1}}},
            r"\['openai'\]\['m'\]\['input'\] must be a number .*got '2.5'",
        ),
        (
            {"openai": {"m": {"input": 1, "output": 1, "cached_input": True}}},
            r"\['cached_input'\] must be a number",
        ),
        (
            {"openai": {"m": {"input": 1, "output": 1, "cached_input": None}}},
            r"\['cached_input'\] must be a number .*got None",
        ),
        (
            '{"openai": {"m": {"input": NaN, "output": 1}}}',
            r"\['input'\] must be a number .*got nan",
        ),
        (
            {"openai": {"m": {"input": 1, "output": 1, "cache_read": 0.1}}},
            r"\['openai'\]\['m'\] has unknown keys \['cache_read'\]",
        ),
    ],
)
def test_a_bad_price_file_names_the_entry(tmp_path: Path, data: Any, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(PriceFileError, match=message) as raised:
        PriceTable(path)
    assert str(path) in str(raised.value)


def test_a_missing_price_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read the price file"):
        PriceTable(tmp_path / "nope.json")


def test_the_builtin_file_has_the_documented_shape() -> None:
    from chatgate.providers import prices

    builtin = Path(prices.__file__).with_name("prices.json")
    table = parse_prices(json.loads(builtin.read_text()), "prices.json")
    assert {"openai", "anthropic", "google", "deepseek", "groq", "cohere"} <= set(table)
