"""Rows of stored logs, their feedback and sessions, and the shapes of log queries.

The store returns these; services pass them on; doors render them (api/render.py). JSON payload
columns stay plain ``dict``/``list`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chatgate.domain import JSON, ToolChoiceValue
from chatgate.domain.projects import ConfigRow, ProjectRow

_Row = TypeVar("_Row")


@dataclass(frozen=True, slots=True)
class LogRef:
    """Enough of a log to attach a child to it."""

    id: str
    session_id: str | None


@dataclass(frozen=True, slots=True)
class LogRow:
    """A stored log: every column of ``logs`` (``judgment`` decoded from its JSON text), with the
    names its ids refer to."""

    id: str
    org_id: str
    project_id: str
    session_id: str | None
    parent_id: str | None
    reference_id: str | None
    config_id: str
    provider: str
    model: str
    sample_index: int
    save: bool
    inputs: dict[str, Any] | None
    messages: list[dict[str, Any]] | None
    output: str | None
    raw_output: str | None
    output_message: dict[str, Any] | None
    finish_reason: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    duration: float | None
    provider_latency: float | None
    provider_request: JSON
    provider_response: JSON
    metadata: dict[str, Any] | None
    source: str | None
    source_datapoint_id: str | None
    user: str | None
    tool_choice: ToolChoiceValue
    tools: list[dict[str, Any]] | None
    error: str | None
    created_at: float
    #: The columns only ``POST /logs`` and ``PATCH /logs`` set (null on chat logs).
    updated_at: float | None
    judgment: JSON
    environment: str | None
    stdout: str | None
    prompt_cost: float | None
    output_cost: float | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    #: Joined: the project's name, the session's and the parent log's reference ids.
    project_name: str
    session_reference_id: str | None
    parent_reference_id: str | None


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One feedback item on a log; ``value`` decoded from its JSON text (None once unset)."""

    id: str
    org_id: str
    log_id: str
    type: str
    value: JSON
    user: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class FeedbackType:
    """A feedback type registered on a project. ``class_`` is select, multi_select, text or
    number; ``values`` the allowed labels (``{"value", "sentiment"}``) of the select classes."""

    project_id: str
    type: str
    class_: str
    values: list[dict[str, Any]]
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class LogView:
    """A log as its page shows it: the stored log, its config and its feedback (oldest first)."""

    log: LogRow
    config: ConfigRow | None
    feedback: tuple[FeedbackRow, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session with the projects of its logs, their count, first inputs and last output."""

    id: str
    org_id: str
    reference_id: str | None
    created_at: float
    projects: tuple[ProjectRow, ...]
    datapoints_count: int
    first_inputs: dict[str, Any] | None
    last_output: str | None
    #: The newest log's time (the session's own when it has none).
    updated_at: float


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What a log listing narrows the caller's logs to (all optional, combined with AND)."""

    project_id: str | None = None
    session_id: str | None = None
    search: str | None = None
    metadata_search: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[_Row]):
    """One page of a listing and the total the listing matches."""

    rows: list[_Row]
    total: int


@dataclass(slots=True)
class LogExtras:
    """The ``POST /logs`` columns a chat log never has, written once its record is committed."""

    log_id: str
    values: dict[str, Any] = field(default_factory=dict)
