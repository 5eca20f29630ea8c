"""Feedback on logs, and the project feedback types its values are checked against.

Feedback attaches to a log of the caller's organisation. Built-in types follow the v4
descriptions (``rating`` is a label, ``good`` or ``bad``; ``action`` and ``issue`` are labels,
one or several; ``correction`` and ``comment`` are text); other types must first be registered
on the log's project (``POST /projects/{id}/feedback-types``). A batch is checked completely
before anything is stored, so a refused batch stores nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatgate import ids
from chatgate.domain import JSON
from chatgate.domain.logs import FeedbackRow, FeedbackType
from chatgate.errors import FieldProblem, InvalidRequest, NotFound
from chatgate.store.logs_repo import FEEDBACK
from chatgate.store.sql import Store

Loc = tuple[str | int, ...]

#: The built-in types, as (class, allowed labels); None allows any label.
BUILT_IN: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "rating": ("select", ("good", "bad")),
    "action": ("multi_select", None),
    "issue": ("multi_select", None),
    "correction": ("text", None),
    "comment": ("text", None),
}
#: Built-in types whose value must be left out when unsetting (the v4 description).
_UNSET_WITHOUT_VALUE = ("rating", "correction", "comment")


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    """One feedback item as a client gives it (``POST /feedback``, or with ``POST /logs``)."""

    type: str
    value: JSON = None
    #: The log it is about (``data_id``); given with ``POST /logs``: the new log, so None.
    log_id: str | None = None
    user: str | None = None
    created_at: float | None = None
    #: Remove the log's feedback of this type (with ``value``: only the items with that value).
    unset: bool = False


@dataclass(frozen=True, slots=True)
class FeedbackTypeInput:
    """A feedback type to register on a project (or to replace, by name)."""

    type: str
    class_: str
    #: ``{"value", "sentiment"}`` labels: required by select and multi_select, refused by others.
    values: list[dict[str, Any]] | None = None


def check_value(
    type_: str, value: Any, custom: dict[str, FeedbackType], loc: Loc
) -> FieldProblem | None:
    """Why ``value`` is not a valid ``type_`` feedback value, or None if it is."""
    if type_ in BUILT_IN:
        class_, labels = BUILT_IN[type_]
    elif type_ in custom:
        class_ = custom[type_].class_
        labels = tuple(v["value"] for v in custom[type_].values) or None
    else:
        known = ", ".join([*BUILT_IN, *custom])
        return FieldProblem(
            (*loc, "type"),
            f"unknown feedback type '{type_}' for this log's project (known: {known}); "
            "register it with POST /v4/projects/{id}/feedback-types",
            "value_error.feedback_type",
        )
    where = (*loc, "value")
    if class_ == "text":
        if not isinstance(value, str):
            return FieldProblem(
                where, f"'{type_}' feedback is text: expected a string", "string_type"
            )
        return None
    if class_ == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return FieldProblem(where, f"'{type_}' feedback is a number", "float_type")
        return None
    chosen = value if isinstance(value, list) else [value]
    if class_ == "select" and isinstance(value, list):
        return FieldProblem(where, f"'{type_}' feedback takes one label, not a list", "string_type")
    if not chosen or not all(isinstance(v, str) for v in chosen):
        return FieldProblem(where, f"'{type_}' feedback is a label (string)", "string_type")
    if labels is not None:
        wrong = [v for v in chosen if v not in labels]
        if wrong:
            return FieldProblem(
                where,
                f"'{type_}' feedback must be one of {', '.join(labels)} (got {', '.join(wrong)})",
                "enum",
            )
    return None


@dataclass(frozen=True, slots=True)
class CheckedFeedback:
    #: The row to store; an ``unset`` item stores none, and its row echoes what was unset.
    row: FeedbackRow
    #: (log id, type, value or None for every value of the type) to remove first, for ``unset``.
    unset: tuple[str, str, Any] | None = None


def checked_feedback(
    item: FeedbackInput,
    *,
    org_id: str,
    log_id: str,
    custom: dict[str, FeedbackType],
    loc: Loc,
) -> CheckedFeedback:
    """Validate one item for the log ``log_id``; raise InvalidRequest with every problem."""
    problems: list[FieldProblem] = []
    if item.unset:
        if item.value is not None and item.type in _UNSET_WITHOUT_VALUE:
            problems.append(
                FieldProblem(
                    (*loc, "value"), f"leave value out when unsetting '{item.type}'", "value_error"
                )
            )
        elif item.value is not None and (
            problem := check_value(item.type, item.value, custom, loc)
        ):
            problems.append(problem)
        elif item.type not in BUILT_IN and item.type not in custom:
            problem = check_value(item.type, "", custom, loc)
            problems.extend([problem] if problem else [])
    elif item.value is None:
        problems.append(FieldProblem((*loc, "value"), "field required", "missing"))
    elif problem := check_value(item.type, item.value, custom, loc):
        problems.append(problem)
    if problems:
        raise InvalidRequest(problems)
    row = FeedbackRow(
        id=ids.new_id(FEEDBACK),
        org_id=org_id,
        log_id=log_id,
        type=item.type,
        value=item.value,
        user=item.user,
        created_at=item.created_at if item.created_at is not None else time.time(),
    )
    return CheckedFeedback(row, (log_id, item.type, item.value) if item.unset else None)


def _type_values(item: FeedbackTypeInput, loc: Loc) -> list[dict[str, Any]]:
    """The labels to store for the type, or why it cannot be registered."""
    if item.type in BUILT_IN:
        raise InvalidRequest.at(
            (*loc, "type"), f"'{item.type}' is a built-in feedback type and cannot be redefined"
        )
    if item.class_ in ("select", "multi_select"):
        if not item.values:
            raise InvalidRequest.at(
                (*loc, "values"), f"a '{item.class_}' feedback type needs values", "missing"
            )
        return list(item.values)
    if item.values:
        raise InvalidRequest.at(
            (*loc, "values"), f"a '{item.class_}' feedback type takes no values", "value_error"
        )
    return []


class FeedbackService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def submit(
        self, org_id: str, items: Sequence[FeedbackInput], *, many: bool
    ) -> list[FeedbackRow]:
        """Check every item against its log's project, then store them all in one transaction.

        ``many``: the items came as a list (errors are located at ``("body", index)``). Returns
        each item's row as submitted; an ``unset`` item's shows the value it unset.
        """
        return await self._store.call(self._submit, org_id, items, many)

    def _submit(self, org_id: str, items: Sequence[FeedbackInput], many: bool) -> list[FeedbackRow]:
        logs = self._store.logs
        checked: list[CheckedFeedback] = []
        types_by_project: dict[str, dict[str, FeedbackType]] = {}
        for index, item in enumerate(items):
            loc: Loc = ("body", index) if many else ("body",)
            if item.log_id is None:
                raise InvalidRequest.at((*loc, "data_id"), "field required", "missing")
            project_id = logs.log_project(org_id, item.log_id)
            if project_id is None:
                raise NotFound(f"log '{item.log_id}' not found")
            if project_id not in types_by_project:
                types_by_project[project_id] = logs.feedback_types(project_id)
            checked.append(
                checked_feedback(
                    item,
                    org_id=org_id,
                    log_id=item.log_id,
                    custom=types_by_project[project_id],
                    loc=loc,
                )
            )
        logs.submit_feedback(
            org_id,
            [c.row for c in checked if c.unset is None],
            [c.unset for c in checked if c.unset is not None],
        )
        return [c.row for c in checked]

    # --- project feedback types -----------------------------------------------------------

    async def types(self, org_id: str, project_id: str) -> list[FeedbackType]:
        """The project's feedback types, in name order (404: not the caller's project)."""
        return await self._store.call(self._put_types, org_id, project_id, [], False)

    async def create_type(
        self, org_id: str, project_id: str, item: FeedbackTypeInput
    ) -> FeedbackType:
        """Register a feedback type on the project (replacing one of the same name)."""
        types = await self._store.call(self._put_types, org_id, project_id, [item], False)
        return next(t for t in types if t.type == item.type)

    async def update_types(
        self, org_id: str, project_id: str, items: Sequence[FeedbackTypeInput], *, many: bool
    ) -> list[FeedbackType]:
        """Register or replace several types (all checked first); the project's types after."""
        return await self._store.call(self._put_types, org_id, project_id, items, many)

    def _put_types(
        self, org_id: str, project_id: str, items: Sequence[FeedbackTypeInput], many: bool
    ) -> list[FeedbackType]:
        if self._store.projects.project(org_id, project_id) is None:
            raise NotFound(f"project '{project_id}' not found")
        checked = [
            (item, _type_values(item, ("body", i) if many else ("body",)))
            for i, item in enumerate(items)
        ]
        logs = self._store.logs
        for item, values in checked:
            logs.put_feedback_type(project_id, item.type, item.class_, values)
        return list(logs.feedback_types(project_id).values())
