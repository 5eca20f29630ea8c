"""Logs, their feedback, the projects' feedback types and session summaries; the JSON Lines
export and import.

Synchronous and short like every repository; the server runs them through ``Store.call``. Every
lookup by id also takes the caller's ``org_id``, so a row of another organisation is
indistinguishable from a missing one. Rows come back as the typed rows of
:mod:`chatgate.domain.logs`. Log *inserts* go through the group-commit ``LogWriter`` (on
``Store``) like chat logs, except a POST /v4/logs that brings columns a chat never sets or
feedback: those logs are inserted here, with their extras, in one transaction
(:meth:`LogsRepo.insert_complete_logs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from chatgate import ids
from chatgate.domain import LogRecord
from chatgate.domain.logs import (
    FeedbackRow,
    FeedbackType,
    LogExtras,
    LogFilter,
    LogRef,
    LogRow,
    LogView,
    Page,
    SessionSummary,
)
from chatgate.domain.projects import ConfigRow, ProjectRow
from chatgate.store import schema as t
from chatgate.store.rows import row_as, rows_as

if TYPE_CHECKING:
    from chatgate.store.sql import Store

FEEDBACK = "ann"  # Humanloop's prefix for feedback ids ("annotation")


def _as_dict(row: sa.Row[Any]) -> dict[str, Any]:
    """A row as the export's JSON Lines entries hold it: every column, as stored."""
    # Column names can be str subclasses (quoted_name); plain str keys serialise everywhere.
    return {str(k): v for k, v in row._mapping.items()}


def encode(value: Any) -> str | None:
    """A value for a JSON-text column (``logs.judgment``, ``feedback.value``)."""
    return None if value is None else orjson.dumps(value).decode()


def decode(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _log_row(row: sa.Row[Any]) -> LogRow:
    return row_as(LogRow, row, judgment=decode(row.judgment))


def _feedback_row(row: sa.Row[Any]) -> FeedbackRow:
    return row_as(FeedbackRow, row, value=decode(row.value))


def _like(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere, with its own wildcards taken literally."""
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: sa.ColumnElement[Any], term: str) -> sa.ColumnElement[bool]:
    text = sa.func.lower(sa.cast(column, sa.Text))
    return text.like(_like(term), escape="\\")


class LogsRepo:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine

    # --- reading logs -----------------------------------------------------------------------

    @staticmethod
    def _log_query() -> sa.Select[Any]:
        """Logs with the project's name and the session's and parent's reference ids."""
        lg, p, s = t.logs, t.projects, t.sessions
        parent = t.logs.alias("parent")
        return (
            sa.select(
                lg,
                p.c.name.label("project_name"),
                s.c.reference_id.label("session_reference_id"),
                parent.c.reference_id.label("parent_reference_id"),
            )
            .join(p, p.c.id == lg.c.project_id)
            .outerjoin(s, s.c.id == lg.c.session_id)
            .outerjoin(parent, parent.c.id == lg.c.parent_id)
        )

    def log(self, org_id: str, log_id: str) -> LogRow | None:
        with self._engine.connect() as c:
            row = c.execute(
                self._log_query().where(t.logs.c.id == log_id, t.logs.c.org_id == org_id)
            ).first()
        return _log_row(row) if row else None

    def log_ref(
        self, org_id: str, *, log_id: str | None = None, reference_id: str | None = None
    ) -> LogRef | None:
        """The log with this id, or the newest with this reference id."""
        lg = t.logs
        query = sa.select(lg.c.id, lg.c.session_id).where(lg.c.org_id == org_id)
        if log_id is not None:
            query = query.where(lg.c.id == log_id)
        else:
            query = query.where(lg.c.reference_id == reference_id).order_by(lg.c.created_at.desc())
        with self._engine.connect() as c:
            row = c.execute(query.limit(1)).first()
        return LogRef(row[0], row[1]) if row else None

    def recent_logs(
        self, *, org_id: str | None = None, project_id: str | None = None, limit: int = 20
    ) -> list[LogRow]:
        """The newest logs, of every organisation unless ``org_id`` is given (the CLI's view)."""
        query = (
            self._log_query().order_by(t.logs.c.created_at.desc(), t.logs.c.id.desc()).limit(limit)
        )
        if org_id:
            query = query.where(t.logs.c.org_id == org_id)
        if project_id:
            query = query.where(t.logs.c.project_id == project_id)
        with self._engine.connect() as c:
            return [_log_row(row) for row in c.execute(query)]

    def list_logs(self, org_id: str, where: LogFilter, *, offset: int, limit: int) -> Page[LogRow]:
        """One page of the caller's logs, newest first, with the total the filter matches."""
        lg = t.logs
        conditions = self.conditions(org_id, where)
        query = (
            self._log_query()
            .where(*conditions)
            .order_by(lg.c.created_at.desc(), lg.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(lg).where(*conditions)
        with self._engine.connect() as c:
            total = int(c.scalar(count) or 0)
            rows = [_log_row(r) for r in c.execute(query)] if offset < total else []
        return Page(rows, total)

    @staticmethod
    def conditions(org_id: str, where: LogFilter) -> list[sa.ColumnElement[bool]]:
        """The WHERE clause of a log listing. On PostgreSQL the substring searches match the
        expressions of migration 0004's trigram indexes exactly, so those indexes apply."""
        lg = t.logs
        conditions: list[sa.ColumnElement[bool]] = [lg.c.org_id == org_id]
        if where.project_id is not None:
            conditions.append(lg.c.project_id == where.project_id)
        if where.session_id is not None:
            conditions.append(lg.c.session_id == where.session_id)
        if where.search:
            conditions.append(
                sa.or_(_contains(lg.c.inputs, where.search), _contains(lg.c.output, where.search))
            )
        if where.metadata_search:
            # Metadata is stored as compact JSON: '"k": 1' is also looked for as '"k":1'.
            compact = where.metadata_search.replace('": ', '":').replace(', "', ',"')
            conditions.append(
                sa.or_(
                    *(_contains(lg.c.metadata, term) for term in {where.metadata_search, compact})
                )
            )
        if where.start is not None:
            conditions.append(lg.c.created_at >= where.start)
        if where.end is not None:
            conditions.append(lg.c.created_at <= where.end)
        return conditions

    def views(self, org_id: str, rows: Sequence[LogRow]) -> list[LogView]:
        """The logs with their configs and feedback (one query for each, whatever the count)."""
        configs = self.configs(org_id, [r.config_id for r in rows])
        feedback = self.feedback_for(org_id, [r.id for r in rows])
        return [LogView(r, configs.get(r.config_id), tuple(feedback[r.id])) for r in rows]

    def configs(self, org_id: str, config_ids: Sequence[str]) -> dict[str, ConfigRow]:
        m = t.model_configs
        if not config_ids:
            return {}
        with self._engine.connect() as c:
            rows = c.execute(sa.select(m).where(m.c.org_id == org_id, m.c.id.in_(set(config_ids))))
            return {str(r.id): row_as(ConfigRow, r) for r in rows}

    def feedback_for(self, org_id: str, log_ids: Sequence[str]) -> dict[str, list[FeedbackRow]]:
        """Each log's feedback, oldest first."""
        out: dict[str, list[FeedbackRow]] = {log_id: [] for log_id in log_ids}
        for row in self._feedback_rows(org_id, log_ids):
            out[row.log_id].append(_feedback_row(row))
        return out

    def _feedback_rows(self, org_id: str, log_ids: Sequence[str]) -> list[sa.Row[Any]]:
        f = t.feedback
        if not log_ids:
            return []
        with self._engine.connect() as c:
            return list(
                c.execute(
                    sa.select(f)
                    .where(f.c.org_id == org_id, f.c.log_id.in_(set(log_ids)))
                    .order_by(f.c.created_at, f.c.id)
                )
            )

    def log_project(self, org_id: str, log_id: str) -> str | None:
        """The project of a log of the caller's organisation (None: no such log)."""
        lg = t.logs
        with self._engine.connect() as c:
            found = c.scalar(
                sa.select(lg.c.project_id).where(lg.c.id == log_id, lg.c.org_id == org_id)
            )
        return str(found) if found is not None else None

    def log_id_by_reference(self, org_id: str, reference_id: str) -> str | None:
        ref = self.log_ref(org_id, reference_id=reference_id)
        return ref.id if ref else None

    # --- changing logs ----------------------------------------------------------------------

    def insert_complete_logs(
        self,
        records: Sequence[LogRecord],
        extras: Sequence[LogExtras],
        feedback: Sequence[FeedbackRow],
    ) -> None:
        """Insert logs with their POST-only columns and their feedback in one transaction: a
        crash or failure leaves all of it or none, never a log without what came with it."""
        lg = t.logs
        with self._engine.begin() as c:
            self._store.insert_logs_in(c, records)
            for extra in extras:
                if extra.values:
                    values = dict(extra.values)
                    if "judgment" in values:
                        values["judgment"] = encode(values["judgment"])
                    c.execute(lg.update().where(lg.c.id == extra.log_id).values(**values))
            if feedback:
                c.execute(t.feedback.insert(), [_feedback_values(f) for f in feedback])

    def update_log(self, org_id: str, log_id: str, values: dict[str, Any]) -> bool:
        lg = t.logs
        with self._engine.begin() as c:
            result = c.execute(
                lg.update()
                .where(lg.c.id == log_id, lg.c.org_id == org_id)
                .values(**values, updated_at=time.time())
            )
        return result.rowcount > 0

    def delete_logs(self, org_id: str, log_ids: Sequence[str]) -> int:
        """Delete the caller's logs among ``log_ids`` (others are left alone) and their feedback."""
        lg, f = t.logs, t.feedback
        if not log_ids:
            return 0
        with self._engine.begin() as c:
            owned = [
                str(r[0])
                for r in c.execute(
                    sa.select(lg.c.id).where(lg.c.org_id == org_id, lg.c.id.in_(set(log_ids)))
                )
            ]
            if not owned:
                return 0
            c.execute(f.delete().where(f.c.log_id.in_(owned)))
            c.execute(lg.delete().where(lg.c.id.in_(owned)))
        return len(owned)

    # --- feedback ---------------------------------------------------------------------------

    def feedback_types(self, project_id: str) -> dict[str, FeedbackType]:
        """The project's feedback types by name, in name order."""
        return {
            str(r.type): row_as(FeedbackType, r, class_=r._mapping["class"])
            for r in self._feedback_type_rows(project_id)
        }

    def _feedback_type_rows(self, project_id: str) -> list[sa.Row[Any]]:
        ft = t.feedback_types
        with self._engine.connect() as c:
            return list(
                c.execute(sa.select(ft).where(ft.c.project_id == project_id).order_by(ft.c.type))
            )

    def put_feedback_type(
        self, project_id: str, type_: str, class_: str, values: list[dict[str, Any]]
    ) -> None:
        """Create the project's feedback type, or replace its class and values."""
        ft = t.feedback_types
        now = time.time()
        key = [ft.c.project_id == project_id, ft.c.type == type_]
        with self._engine.begin() as c:
            updated = c.execute(
                ft.update()
                .where(*key)
                .values({"class": class_, "values": values, "updated_at": now})
            )
            if updated.rowcount == 0:
                c.execute(
                    ft.insert().values(
                        {
                            "project_id": project_id,
                            "type": type_,
                            "class": class_,
                            "values": values,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                )

    def submit_feedback(
        self,
        org_id: str,
        items: Sequence[FeedbackRow],
        unset: Sequence[tuple[str, str, Any]],
    ) -> None:
        """Add feedback rows, atomically.

        ``unset`` holds (log id, type, value): the log's feedback of that type is removed, all of
        it when value is None, else the items with exactly that value.
        """
        f = t.feedback
        with self._engine.begin() as c:
            for log_id, type_, value in unset:
                match = [f.c.org_id == org_id, f.c.log_id == log_id, f.c.type == type_]
                if value is not None:
                    doomed = [
                        r.id
                        for r in c.execute(sa.select(f.c.id, f.c.value).where(*match))
                        if decode(r.value) == value
                    ]
                    match.append(f.c.id.in_(doomed))
                c.execute(f.delete().where(*match))
            if items:
                c.execute(f.insert(), [_feedback_values(i) for i in items])

    # --- sessions ---------------------------------------------------------------------------

    def create_session(self, org_id: str) -> str:
        session_id = ids.new_id(ids.SESSION)
        with self._engine.begin() as c:
            c.execute(
                t.sessions.insert().values(
                    id=session_id, org_id=org_id, reference_id=None, created_at=time.time()
                )
            )
        return session_id

    def project_session_ids(
        self, org_id: str, project_id: str, *, offset: int, limit: int
    ) -> Page[str]:
        """Sessions with a log in the project, newest first, and how many there are."""
        s, lg = t.sessions, t.logs
        in_project = sa.select(lg.c.session_id).where(
            lg.c.org_id == org_id, lg.c.project_id == project_id, lg.c.session_id.is_not(None)
        )
        where = [s.c.org_id == org_id, s.c.id.in_(in_project)]
        with self._engine.connect() as c:
            total = int(c.scalar(sa.select(sa.func.count()).select_from(s).where(*where)) or 0)
            found = c.execute(
                sa.select(s.c.id)
                .where(*where)
                .order_by(s.c.created_at.desc(), s.c.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return Page([str(r[0]) for r in found], total)

    def session_summary(self, org_id: str, session_id: str) -> SessionSummary | None:
        """The session with the projects of its logs, their count, first inputs and last output."""
        s, lg, p = t.sessions, t.logs, t.projects
        in_session = lg.c.session_id == session_id
        order = (lg.c.created_at, lg.c.id)
        with self._engine.connect() as c:
            session = c.execute(
                sa.select(s).where(s.c.id == session_id, s.c.org_id == org_id)
            ).first()
            if session is None:
                return None
            count = int(c.scalar(sa.select(sa.func.count()).select_from(lg).where(in_session)) or 0)
            projects = rows_as(
                ProjectRow,
                c.execute(
                    sa.select(p)
                    .where(p.c.id.in_(sa.select(lg.c.project_id).where(in_session)))
                    .order_by(p.c.created_at)
                ),
            )
            first = c.execute(
                sa.select(lg.c.inputs).where(in_session).order_by(*order).limit(1)
            ).first()
            last = c.execute(
                sa.select(lg.c.output, lg.c.created_at)
                .where(in_session)
                .order_by(*(col.desc() for col in order))
                .limit(1)
            ).first()
        return row_as(
            SessionSummary,
            session,
            projects=tuple(projects),
            datapoints_count=count,
            first_inputs=first[0] if first else None,
            last_output=last[0] if last else None,
            updated_at=last[1] if last else session.created_at,
        )

    # --- JSON Lines export and import ---------------------------------------------------------

    def count_project_logs(self, org_id: str, project_id: str) -> int:
        lg = t.logs
        with self._engine.connect() as c:
            return int(
                c.scalar(
                    sa.select(sa.func.count())
                    .select_from(lg)
                    .where(lg.c.org_id == org_id, lg.c.project_id == project_id)
                )
                or 0
            )

    def export_project(
        self, org_id: str, project_id: str, batch: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every log of the project, oldest first, each with what it refers to (self-contained).

        One entry: ``{"log", "project", "session", "config", "feedback"}``, every column as stored
        (ids and epoch times untouched), so that :meth:`import_entry` can rebuild the rows in
        another database.
        """
        lg, p, s, m = t.logs, t.projects, t.sessions, t.model_configs
        with self._engine.connect() as c:
            project_row = c.execute(sa.select(p).where(p.c.id == project_id)).first()
        if project_row is None:
            return
        project = _as_dict(project_row)
        project["feedback_types"] = [_as_dict(r) for r in self._feedback_type_rows(project_id)]
        after: tuple[float, str] | None = None
        while True:
            query = sa.select(lg).where(lg.c.org_id == org_id, lg.c.project_id == project_id)
            if after is not None:
                query = query.where(
                    sa.or_(
                        lg.c.created_at > after[0],
                        sa.and_(lg.c.created_at == after[0], lg.c.id > after[1]),
                    )
                )
            with self._engine.connect() as c:
                rows = [
                    _as_dict(r)
                    for r in c.execute(query.order_by(lg.c.created_at, lg.c.id).limit(batch))
                ]
                if not rows:
                    return
                session_ids = {r["session_id"] for r in rows if r["session_id"]}
                sessions = {
                    str(r.id): _as_dict(r)
                    for r in c.execute(sa.select(s).where(s.c.id.in_(session_ids)))
                }
                configs = {
                    str(r.id): _as_dict(r)
                    for r in c.execute(
                        sa.select(m).where(m.c.id.in_({r["config_id"] for r in rows}))
                    )
                }
            # As stored: feedback values stay JSON text.
            feedback: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
            for item in self._feedback_rows(org_id, [r["id"] for r in rows]):
                feedback[item.log_id].append(_as_dict(item))
            for row in rows:
                yield {
                    "log": row,
                    "project": project,
                    "session": sessions.get(row["session_id"]) if row["session_id"] else None,
                    "config": configs[row["config_id"]],
                    "feedback": feedback[row["id"]],
                }
            after = (rows[-1]["created_at"], rows[-1]["id"])

    def import_entry(self, org_id: str, entry: dict[str, Any]) -> bool:
        """Insert one exported entry into ``org_id`` with its ids; False if the log was there.

        Rows that already exist (same id) are left as they are, so importing a file twice
        creates nothing the second time. A row whose id exists in another organisation, or whose
        natural key (project name, session reference, config fingerprint) is taken by another id
        in this organisation, is an error: the ids could not be preserved.
        """
        lg, f = t.logs, t.feedback
        with self._engine.begin() as c:
            project = dict(entry["project"])
            feedback_types = project.pop("feedback_types", [])
            self._ensure(c, t.projects, org_id, project, natural=("name",))
            for ft_row in feedback_types:
                ft = t.feedback_types
                exists = c.scalar(
                    sa.select(sa.func.count())
                    .select_from(ft)
                    .where(ft.c.project_id == ft_row["project_id"], ft.c.type == ft_row["type"])
                )
                if not exists:
                    c.execute(ft.insert().values(ft_row))
            if entry.get("session"):
                self._ensure(c, t.sessions, org_id, entry["session"], natural=("reference_id",))
            self._ensure(c, t.model_configs, org_id, entry["config"], natural=("fingerprint",))
            log = dict(entry["log"])
            owner = c.scalar(sa.select(lg.c.org_id).where(lg.c.id == log["id"]))
            if owner is not None:
                if owner != org_id:
                    raise ValueError(f"log {log['id']} belongs to another organisation")
                return False
            log["org_id"] = org_id
            known = {col.name for col in lg.columns}
            c.execute(lg.insert().values({k: v for k, v in log.items() if k in known}))
            for item in entry.get("feedback", []):
                if c.scalar(sa.select(f.c.id).where(f.c.id == item["id"])) is None:
                    c.execute(f.insert().values({**item, "org_id": org_id}))
        return True

    @staticmethod
    def _ensure(
        c: sa.Connection,
        table: sa.Table,
        org_id: str,
        row: dict[str, Any],
        natural: tuple[str, ...],
    ) -> None:
        owner = c.scalar(sa.select(table.c.org_id).where(table.c.id == row["id"]))
        if owner is not None:
            if owner != org_id:
                raise ValueError(f"{table.name} {row['id']} belongs to another organisation")
            return
        key = [table.c[name] == row[name] for name in natural if row.get(name) is not None]
        if key:
            other = c.scalar(sa.select(table.c.id).where(table.c.org_id == org_id, *key))
            if other is not None:
                raise ValueError(
                    f"{table.name} {row['id']} cannot be imported: {other} already has its "
                    f"{', '.join(natural)} in this organisation"
                )
        known = {col.name for col in table.columns}
        c.execute(
            table.insert().values(
                {k: v for k, v in {**row, "org_id": org_id}.items() if k in known}
            )
        )


def _feedback_values(row: FeedbackRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "org_id": row.org_id,
        "log_id": row.log_id,
        "type": row.type,
        "value": encode(row.value),
        "user": row.user,
        "created_at": row.created_at,
    }
