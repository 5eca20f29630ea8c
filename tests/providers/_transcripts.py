"""What the provider test modules share: reading the recorded transcripts in
``tests/fixtures/<provider>/`` and the tool most of their requests carry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatgate.domain import Tool

WEATHER = Tool(
    name="get_weather",
    description="Current weather",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}},
)


def read_json(directory: Path, name: str) -> Any:
    return json.loads((directory / name).read_text())


def cut(raw: bytes, size: int) -> list[bytes]:
    """A recorded stream cut into arbitrary pieces (events split across reads)."""
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def read_pieces(directory: Path, name: str, size: int) -> list[bytes]:
    return cut((directory / name).read_bytes(), size)
