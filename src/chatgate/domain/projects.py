"""Rows of projects, sessions, model configs, environments and deployments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: How a list of projects may be ordered (names case-insensitively).
ProjectSortBy = Literal["created_at", "updated_at", "name"]
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: str
    org_id: str
    name: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    org_id: str
    reference_id: str | None
    created_at: float


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


@dataclass(frozen=True, slots=True)
class ConfigUse:
    """A config as used in or registered to one project (the v4 ``ProjectConfigResponse``)."""

    config: ConfigRow
    created_at: float  # registered, or first used, in the project
    updated_at: float
    last_used: float  # newest log with it, else created_at
    num_datapoints: int


@dataclass(frozen=True, slots=True)
class Deployment:
    """One environment of the organisation and the config a project deployed there, if any."""

    environment: EnvironmentRow
    config: ConfigRow | None
