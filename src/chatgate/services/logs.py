"""Logs: list, read, record (``POST /logs``), update and delete, scoped to the organisation.

Logs recorded here are committed by the same group-commit writer as chat logs, unless they bring
what a chat log never has (feedback, a judgment, an environment, stdout, costs): those are
stored with it in one transaction of their own. Either way :meth:`LogService.record` returns
once they are stored.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from chatgate import ids
from chatgate.domain import JSON, LogRecord, Message, ModelConfig
from chatgate.domain.logs import FeedbackRow, LogExtras, LogFilter, LogView, Page
from chatgate.domain.projects import ConfigRow
from chatgate.errors import InvalidRequest, NotFound, NotImplementedByServer
from chatgate.services.feedback import FeedbackInput, checked_feedback
from chatgate.services.recorder import without_payloads
from chatgate.services.resolve import Placement, Resolver
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LoggedConfig:
    """The model config a logged call used, as given inline."""

    config: ModelConfig
    #: A completion prompt template: part of the stored config, so of its identity.
    prompt_template: str | None = None
    #: Organisation tools the config links to (chatgate has none: a 404).
    linked_tool_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """A tool config given instead of a model config (chatgate does not log those)."""

    name: str


@dataclass(frozen=True, slots=True)
class LogInput:
    """One log as ``POST /logs`` gives it (messages and configs already domain values)."""

    where: Placement = field(default_factory=Placement)
    config_id: str | None = None
    config: LoggedConfig | ToolConfig | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    metadata: dict[str, Any] | None = None
    save: bool = True
    source_datapoint_id: str | None = None
    reference_id: str | None = None
    messages: tuple[Message, ...] | None = None
    output: str | None = None
    output_message: Message | None = None
    judgment: JSON = None
    environment: str | None = None
    #: One item or a list, as given: errors of a list's items are located by index.
    feedback: FeedbackInput | Sequence[FeedbackInput] | None = None
    created_at: float | None = None
    error: str | None = None
    stdout: str | None = None
    duration: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    prompt_cost: float | None = None
    output_cost: float | None = None
    provider_request: dict[str, Any] | None = None
    provider_response: dict[str, Any] | None = None


class _Unchanged(enum.Enum):
    UNCHANGED = enum.auto()


#: A field of :class:`LogChange` that the update leaves as it is.
UNCHANGED = _Unchanged.UNCHANGED


@dataclass(frozen=True, slots=True)
class LogChange:
    """What ``PATCH /logs`` changes: the fields given (None clears one), the others stay."""

    output: str | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED
    error: str | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED
    duration: float | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED

    def values(self) -> dict[str, Any]:
        """The columns to set (``output`` sets ``raw_output`` too)."""
        values: dict[str, Any] = {}
        if self.output is not UNCHANGED:
            values.update(output=self.output, raw_output=self.output)
        if self.error is not UNCHANGED:
            values["error"] = self.error
        if self.duration is not UNCHANGED:
            values["duration"] = self.duration
        return values


@dataclass(slots=True)
class _Recorded:
    record: LogRecord
    extras: LogExtras
    feedback: list[FeedbackRow]


class LogService:
    def __init__(self, store: Store, writer: LogWriter, resolver: Resolver) -> None:
        self._store = store
        self._writer = writer
        self._resolver = resolver

    # --- reading -------------------------------------------------------------------------------

    async def list(
        self, org_id: str, where: LogFilter, *, offset: int, limit: int
    ) -> Page[LogView]:
        """One page of the caller's logs of a project or session, newest first.

        422 without a project or session; 404 when either is not the caller's.
        """
        if where.project_id is None and where.session_id is None:
            raise InvalidRequest.at(
                ("query", "project_id"), "project_id (or session_id) is required", "missing"
            )
        return await self._store.call(self._list, org_id, where, offset, limit)

    def _list(self, org_id: str, where: LogFilter, offset: int, limit: int) -> Page[LogView]:
        store = self._store
        if (
            where.project_id is not None
            and store.projects.project(org_id, where.project_id) is None
        ):
            raise NotFound(f"project '{where.project_id}' not found")
        if (
            where.session_id is not None
            and store.projects.session(org_id, where.session_id) is None
        ):
            raise NotFound(f"session '{where.session_id}' not found")
        found = store.logs.list_logs(org_id, where, offset=offset, limit=limit)
        return Page(store.logs.views(org_id, found.rows), found.total)

    async def export(
        self, org_id: str, project_id: str, *, offset: int, limit: int
    ) -> Page[LogView]:
        """One page of every log of the project, newest first (404: not the caller's)."""
        return await self._store.call(
            self._list, org_id, LogFilter(project_id=project_id), offset, limit
        )

    async def get(self, org_id: str, log_id: str) -> LogView:
        return await self._store.call(self._view, org_id, log_id, f"'{log_id}'")

    def _view(self, org_id: str, log_id: str, what: str) -> LogView:
        row = self._store.logs.log(org_id, log_id)
        if row is None:
            raise NotFound(f"log {what} not found")
        return self._store.logs.views(org_id, [row])[0]

    # --- recording ----------------------------------------------------------------------------

    async def record(
        self, org_id: str, items: Sequence[LogInput], *, many: bool
    ) -> Sequence[LogRecord]:
        """Resolve, check and store the logs (all or none); the stored records.

        ``many``: the items came as a list (errors are located at ``("body", index)``).
        """
        resolved = [
            await self._resolve(org_id, item, ("body", index) if many else ("body",))
            for index, item in enumerate(items)
        ]
        records = [r.record for r in resolved]
        extras = [r.extras for r in resolved]
        feedback = [f for r in resolved for f in r.feedback]
        try:
            if feedback or any(e.values for e in extras):
                # Columns and feedback a chat log never has: one transaction of its own rather
                # than the group-committed writer, so the log and what came with it are stored
                # together.
                await self._store.call(
                    self._store.logs.insert_complete_logs, records, extras, feedback
                )
            else:
                await self._writer.write(records)
        except Exception:
            self._resolver.forget_projects_of(records)  # deleted by another process? afresh
            raise
        return records

    async def _resolve(self, org_id: str, item: LogInput, loc: Loc) -> _Recorded:
        placed = await self._resolver.place(org_id, item.where, loc=loc, exclusive=True)
        config = await self._config(org_id, item, loc)
        log_id = ids.new_id(ids.LOG)
        record = LogRecord(
            id=log_id,
            org_id=org_id,
            project_id=placed.project_id,
            config_id=config.id,
            provider=str(config.body.get("provider") or ""),
            model=str(config.body.get("model") or ""),
            created_at=item.created_at if item.created_at is not None else time.time(),
            session_id=placed.session_id,
            parent_id=placed.parent_id,
            reference_id=item.reference_id,
            save=item.save,
            inputs=item.inputs,
            messages=[m.to_v4() for m in item.messages] if item.messages is not None else None,
            output=item.output,
            raw_output=item.output,
            output_message=item.output_message.to_v4() if item.output_message else None,
            prompt_tokens=item.prompt_tokens,
            output_tokens=item.output_tokens,
            duration=item.duration,
            provider_request=item.provider_request,
            provider_response=item.provider_response,
            metadata=item.metadata,
            source=item.source,
            source_datapoint_id=item.source_datapoint_id,
            tools=config.body.get("tools") or None,
            error=item.error,
        )
        if not item.save:
            record = without_payloads(record)
        extras = {
            "judgment": item.judgment,
            "environment": item.environment,
            "stdout": item.stdout,
            "prompt_cost": item.prompt_cost,
            "output_cost": item.output_cost,
        }
        feedback: list[FeedbackRow] = []
        if item.feedback is not None:
            listed = not isinstance(item.feedback, FeedbackInput)
            given = [item.feedback] if isinstance(item.feedback, FeedbackInput) else item.feedback
            custom = await self._store.call(self._store.logs.feedback_types, placed.project_id)
            feedback = [
                checked_feedback(
                    fb,
                    org_id=org_id,
                    log_id=log_id,
                    custom=custom,
                    loc=(*loc, "feedback", j) if listed else (*loc, "feedback"),
                ).row
                for j, fb in enumerate(given)
            ]
        values = {k: v for k, v in extras.items() if v is not None}
        return _Recorded(record, LogExtras(log_id, values), feedback)

    async def _config(self, org_id: str, item: LogInput, loc: Loc) -> ConfigRow:
        """The stored config of a logged call (get-or-create by identity, as chat does)."""
        store = self._store
        if item.config_id is not None:
            row = await store.call(store.projects.config, org_id, item.config_id)
            if row is None:
                raise NotFound(f"model config '{item.config_id}' not found")
            return row
        if item.config is None:
            raise InvalidRequest.at(
                (*loc, "config"), "config is required unless config_id is given", "missing"
            )
        if isinstance(item.config, ToolConfig):
            raise NotImplementedByServer("logging with a tool config is not supported by chatgate")
        if item.config.linked_tool_ids:
            raise NotFound(
                f"organization tool '{item.config.linked_tool_ids[0]}' not found "
                "(this server has none)"
            )
        config = item.config.config
        if item.config.prompt_template is None:
            config_id = await self._resolver.config(org_id, config)
        else:
            body = {**config.identity(), "prompt_template": item.config.prompt_template}
            fingerprint = hashlib.sha256(
                orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            config_id = await store.call(
                store.projects.get_or_create_config,
                org_id,
                fingerprint,
                body,
                config.name,
                config.description,
            )
        created = await store.call(store.projects.config, org_id, config_id)
        assert created is not None  # just got or created, and configs are never deleted
        return created

    # --- updating and deleting ----------------------------------------------------------------

    async def update(self, org_id: str, log_id: str, change: LogChange) -> LogView:
        """Change the log's fields; the log as it is now (404: not the caller's)."""
        return await self._store.call(self._update, org_id, log_id, change, f"'{log_id}'")

    async def update_by_reference(
        self, org_id: str, reference_id: str, change: LogChange
    ) -> LogView:
        """:meth:`update` the newest log created with ``reference_id``."""
        return await self._store.call(self._update_by_reference, org_id, reference_id, change)

    def _update_by_reference(self, org_id: str, reference_id: str, change: LogChange) -> LogView:
        what = f"with reference id '{reference_id}'"
        log_id = self._store.logs.log_id_by_reference(org_id, reference_id)
        if log_id is None:
            raise NotFound(f"log {what} not found")
        return self._update(org_id, log_id, change, what)

    def _update(self, org_id: str, log_id: str, change: LogChange, what: str) -> LogView:
        if not self._store.logs.update_log(org_id, log_id, change.values()):
            raise NotFound(f"log {what} not found")
        return self._view(org_id, log_id, what)

    async def delete(self, org_id: str, log_ids: Sequence[str]) -> int:
        """Delete the caller's logs among ``log_ids`` (others' are left alone); how many."""
        return await self._store.call(self._store.logs.delete_logs, org_id, log_ids)
