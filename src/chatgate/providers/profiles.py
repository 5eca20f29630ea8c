"""Per-model quirks as data, not branches."""

from __future__ import annotations

#: OpenAI reasoning models refuse ``max_tokens`` and take ``max_completion_tokens`` instead.
_MAX_COMPLETION_TOKENS_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def uses_max_completion_tokens(provider: str, model: str) -> bool:
    return provider == "openai" and model.startswith(_MAX_COMPLETION_TOKENS_PREFIXES)
