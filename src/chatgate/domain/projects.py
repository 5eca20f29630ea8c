"""Rows of projects, sessions, model configs, environments and deployments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: str
    org_id: str
    name: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ConfigRow:
    """A stored model config: ``body`` is its identity (the parameters that make it itself)."""

    id: str
    org_id: str
    name: str | None
    description: str | None
    body: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class EnvironmentRow:
    id: str
    org_id: str
    name: str
    #: ``default`` for the organisation's default environment (``production``), else ``other``.
    tag: str
    created_at: float
