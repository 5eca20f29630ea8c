"""Per-model facts for the Anthropic Messages wire, as data.

Anthropic requires ``max_tokens`` on every call, and v4's ``max_tokens: -1`` means "no explicit
limit": chatgate then sends the model's own maximum output, looked up here by model-name prefix
(dated ids such as ``claude-sonnet-4-5-20250929`` and ``-latest`` aliases match their family).
Figures are Anthropic's published standard maximum output per model (without beta headers).
"""

from __future__ import annotations

#: (model-name prefix, maximum output tokens); the longest matching prefix wins.
MAX_OUTPUT_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-8", 128_000),
    ("claude-opus-4-5", 64_000),
    ("claude-opus-4-1", 32_000),
    ("claude-opus-4", 32_000),
    ("claude-sonnet-4-5", 64_000),
    ("claude-sonnet-4", 64_000),
    ("claude-haiku-4-5", 64_000),
    ("claude-3-7-sonnet", 64_000),
    ("claude-3-5-sonnet", 8_192),
    ("claude-3-5-haiku", 8_192),
    ("claude-3-opus", 4_096),
    ("claude-3-sonnet", 4_096),
    ("claude-3-haiku", 4_096),
)

#: For a model not in the table: every Claude model accepts at least this many output tokens.
DEFAULT_MAX_OUTPUT_TOKENS = 4_096

#: v4 ``reasoning_effort`` enum -> Anthropic extended-thinking ``budget_tokens``.
#: ``low`` is Anthropic's minimum budget (1024).
THINKING_BUDGETS: dict[str, int] = {"low": 1_024, "medium": 8_192, "high": 16_384}


def max_output_tokens(model: str) -> int:
    """The model's maximum output, or :data:`DEFAULT_MAX_OUTPUT_TOKENS` for an unknown model."""
    best: tuple[int, int] | None = None
    for prefix, limit in MAX_OUTPUT_TOKENS:
        if model.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), limit)
    return best[1] if best else DEFAULT_MAX_OUTPUT_TOKENS
