"""Store queries behind the Logs, Feedback and Sessions endpoints and the JSONL export/import.

Kept apart from ``sql.Store`` (which serves the chat hot path) but built on it: the same engine,
the same rule that every lookup by id also takes the caller's ``org_id``, so a row of another
organisation is indistinguishable from a missing one. Methods are synchronous and short; routes
call them through ``Store.call``. Log *inserts* go through the group-commit ``LogWriter``
like chat logs, except a POST /v4/logs that brings columns a chat never sets or feedback: those
logs are inserted here, with their extras, in one transaction (:meth:`insert_complete_logs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from chatgate import ids
from chatgate.domain import LogRecord
from chatgate.store import schema as t

if TYPE_CHECKING:
    from chatgate.store.sql import Store

FEEDBACK = "ann"  # Humanloop's prefix for feedback ids ("annotation")


def _as_dict(row: sa.Row[Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row._mapping.items()}


def encode(value: Any) -> str | None:
    """A value for a JSON-text column (``logs.judgment``, ``feedback.value``)."""
    return None if value is None else orjson.dumps(value).decode()


def decode(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def decoded_log(row: dict[str, Any]) -> dict[str, Any]:
    """A log row with its JSON-text columns parsed."""
    return {**row, "judgment": decode(row.get("judgment"))}


def _like(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere, with its own wildcards taken literally."""
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: sa.ColumnElement[Any], term: str) -> sa.ColumnElement[bool]:
    text = sa.func.lower(sa.cast(column, sa.Text))
    return text.like(_like(term), escape="\\")


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What ``GET /v4/logs`` narrows the caller's logs to (all optional, combined with AND)."""

    project_id: str | None = None
    session_id: str | None = None
    search: str | None = None
    metadata_search: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    total: int


@dataclass(slots=True)
class LogExtras:
    """The POST /v4/logs columns a chat log never has, written once its record is committed."""

    log_id: str
    values: dict[str, Any] = field(default_factory=dict)


class LogsRepo:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # --- reading logs -----------------------------------------------------------------------

    def list_logs(self, org_id: str, where: LogFilter, *, offset: int, limit: int) -> Page:
        """One page of the caller's logs, newest first, with the total the filter matches."""
        lg = t.logs
        conditions = self.conditions(org_id, where)
        query = (
            self.store._log_query()
            .where(*conditions)
            .order_by(lg.c.created_at.desc(), lg.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(lg).where(*conditions)
        with self.engine.connect() as c:
            total = int(c.scalar(count) or 0)
            rows = [_as_dict(r) for r in c.execute(query)] if offset < total else []
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

    def configs(self, org_id: str, config_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        m = t.model_configs
        if not config_ids:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(sa.select(m).where(m.c.org_id == org_id, m.c.id.in_(set(config_ids))))
            return {str(r.id): _as_dict(r) for r in rows}

    def feedback_for(
        self, org_id: str, log_ids: Sequence[str], *, raw: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        """Each log's feedback, oldest first; ``raw`` keeps values as stored (JSON text)."""
        f = t.feedback
        out: dict[str, list[dict[str, Any]]] = {log_id: [] for log_id in log_ids}
        if not log_ids:
            return out
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(f)
                .where(f.c.org_id == org_id, f.c.log_id.in_(set(log_ids)))
                .order_by(f.c.created_at, f.c.id)
            )
            for row in rows:
                item = _as_dict(row)
                if not raw:
                    item["value"] = decode(item["value"])
                out[row.log_id].append(item)
        return out

    def log_project(self, org_id: str, log_id: str) -> str | None:
        """The project of a log of the caller's organisation (None: no such log)."""
        lg = t.logs
        with self.engine.connect() as c:
            found = c.scalar(
                sa.select(lg.c.project_id).where(lg.c.id == log_id, lg.c.org_id == org_id)
            )
        return str(found) if found is not None else None

    def log_id_by_reference(self, org_id: str, reference_id: str) -> str | None:
        ref = self.store.log_ref(org_id, reference_id=reference_id)
        return ref.id if ref else None

    # --- changing logs ----------------------------------------------------------------------

    def insert_complete_logs(
        self,
        records: Sequence[LogRecord],
        extras: Sequence[LogExtras],
        feedback: Sequence[dict[str, Any]],
    ) -> None:
        """Insert logs with their POST-only columns and their feedback in one transaction: a
        crash or failure leaves all of it or none, never a log without what came with it."""
        lg = t.logs
        with self.engine.begin() as c:
            self.store.insert_logs_in(c, records)
            for extra in extras:
                if extra.values:
                    values = dict(extra.values)
                    if "judgment" in values:
                        values["judgment"] = encode(values["judgment"])
                    c.execute(lg.update().where(lg.c.id == extra.log_id).values(**values))
            if feedback:
                c.execute(
                    t.feedback.insert(), [{**f, "value": encode(f["value"])} for f in feedback]
                )

    def update_log(self, org_id: str, log_id: str, values: dict[str, Any]) -> bool:
        lg = t.logs
        with self.engine.begin() as c:
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
        with self.engine.begin() as c:
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

    def feedback_types(self, project_id: str) -> dict[str, dict[str, Any]]:
        ft = t.feedback_types
        with self.engine.connect() as c:
            rows = c.execute(sa.select(ft).where(ft.c.project_id == project_id).order_by(ft.c.type))
            return {str(r.type): _as_dict(r) for r in rows}

    def put_feedback_type(
        self, project_id: str, type_: str, class_: str, values: list[dict[str, Any]]
    ) -> None:
        """Create the project's feedback type, or replace its class and values."""
        ft = t.feedback_types
        now = time.time()
        key = [ft.c.project_id == project_id, ft.c.type == type_]
        with self.engine.begin() as c:
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
        items: Sequence[dict[str, Any]],
        unset: Sequence[tuple[str, str, Any]],
    ) -> None:
        """Add feedback rows, atomically.

        ``unset`` holds (log id, type, value): the log's feedback of that type is removed, all of
        it when value is None, else the items with exactly that value.
        """
        f = t.feedback
        with self.engine.begin() as c:
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
                c.execute(f.insert(), [{**i, "value": encode(i["value"])} for i in items])

    # --- sessions ---------------------------------------------------------------------------

    def create_session(self, org_id: str) -> str:
        session_id = ids.new_id(ids.SESSION)
        with self.engine.begin() as c:
            c.execute(
                t.sessions.insert().values(
                    id=session_id, org_id=org_id, reference_id=None, created_at=time.time()
                )
            )
        return session_id

    def project_session_ids(
        self, org_id: str, project_id: str, *, offset: int, limit: int
    ) -> tuple[list[str], int]:
        """Sessions with a log in the project, newest first, and how many there are."""
        s, lg = t.sessions, t.logs
        in_project = sa.select(lg.c.session_id).where(
            lg.c.org_id == org_id, lg.c.project_id == project_id, lg.c.session_id.is_not(None)
        )
        where = [s.c.org_id == org_id, s.c.id.in_(in_project)]
        with self.engine.connect() as c:
            total = int(c.scalar(sa.select(sa.func.count()).select_from(s).where(*where)) or 0)
            found = c.execute(
                sa.select(s.c.id)
                .where(*where)
                .order_by(s.c.created_at.desc(), s.c.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return [str(r[0]) for r in found], total

    # --- JSON Lines export and import ---------------------------------------------------------

    def count_project_logs(self, org_id: str, project_id: str) -> int:
        lg = t.logs
        with self.engine.connect() as c:
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
        with self.engine.connect() as c:
            project_row = c.execute(sa.select(p).where(p.c.id == project_id)).first()
        if project_row is None:
            return
        project = _as_dict(project_row)
        project["feedback_types"] = list(self.feedback_types(project_id).values())
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
            with self.engine.connect() as c:
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
            feedback = self.feedback_for(org_id, [r["id"] for r in rows], raw=True)
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
        with self.engine.begin() as c:
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
