"""Rows of stored logs and their feedback, and the shapes of log queries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogRef:
    """Enough of a log to attach a child to it."""

    id: str
    session_id: str | None
