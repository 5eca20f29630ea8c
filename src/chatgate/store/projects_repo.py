"""Projects, sessions, model configs, environments and deployments.

Synchronous and short like every repository; the server runs them through ``Store.call``. Every
query takes the caller's ``org_id``: a row of another organisation is indistinguishable from a
missing one. Rows are the typed rows of :mod:`chatgate.domain.projects`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from chatgate import ids
from chatgate.domain.projects import (
    ConfigRow,
    ConfigUse,
    Deployment,
    EnvironmentRow,
    ProjectRow,
    ProjectSortBy,
    SessionRow,
    SortOrder,
)
from chatgate.store import schema as t
from chatgate.store.rows import one_as, row_as, rows_as

if TYPE_CHECKING:
    from chatgate.store.sql import Store

#: Id prefix of environments (Humanloop's are ``env_…``).
ENVIRONMENT_PREFIX = "env"
DEFAULT_ENVIRONMENT = "production"
DEFAULT_TAG = "default"
OTHER_TAG = "other"


def _referencing(table: sa.Table) -> list[tuple[sa.Table, sa.Column[Any]]]:
    """Every (table, column) of the schema with a foreign key to ``table``."""
    found = []
    for other in t.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is table:
                found.append((other, fk.parent))
    return found


class ProjectsRepo:
    def __init__(self, store: Store) -> None:
        self._engine = store.engine

    def _get_or_create(
        self, table: sa.Table, where: Sequence[sa.ColumnElement[bool]], values: dict[str, Any]
    ) -> str:
        """Insert-or-select that tolerates a concurrent creator (another request or process)."""
        select = sa.select(table.c.id).where(*where)
        with self._engine.connect() as c:
            found = c.scalar(select)
        if found:
            return str(found)
        try:
            with self._engine.begin() as c:
                c.execute(table.insert().values(**values))
            return str(values["id"])
        except sa.exc.IntegrityError:
            with self._engine.connect() as c:
                found = c.scalar(select)
            if not found:
                raise
            return str(found)

    # --- projects ------------------------------------------------------------------------------

    def get_or_create_project(self, org_id: str, name: str) -> str:
        now = time.time()
        p = t.projects
        return self._get_or_create(
            p,
            [p.c.org_id == org_id, p.c.name == name],
            {
                "id": ids.new_id(ids.PROJECT),
                "org_id": org_id,
                "name": name,
                "created_at": now,
                "updated_at": now,
            },
        )

    def project_id_by_name(self, org_id: str, name: str) -> str | None:
        p = t.projects
        with self._engine.connect() as c:
            found = c.scalar(sa.select(p.c.id).where(p.c.org_id == org_id, p.c.name == name))
        return str(found) if found else None

    def project(self, org_id: str, project_id: str) -> ProjectRow | None:
        p = t.projects
        return one_as(
            self._engine, ProjectRow, sa.select(p).where(p.c.id == project_id, p.c.org_id == org_id)
        )

    def project_by_name(self, org_id: str, name: str) -> ProjectRow | None:
        p = t.projects
        return one_as(
            self._engine, ProjectRow, sa.select(p).where(p.c.org_id == org_id, p.c.name == name)
        )

    def create_project(self, org_id: str, name: str) -> ProjectRow | None:
        """A new project; None when the organisation already has one with that name."""
        now = time.time()
        created = ProjectRow(
            id=ids.new_id(ids.PROJECT), org_id=org_id, name=name, created_at=now, updated_at=now
        )
        try:
            with self._engine.begin() as c:
                c.execute(
                    t.projects.insert().values(
                        id=created.id,
                        org_id=org_id,
                        name=name,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            return None
        return created

    def list_projects(
        self,
        org_id: str,
        *,
        offset: int,
        limit: int,
        name_filter: str | None,
        sort_by: ProjectSortBy,
        order: SortOrder,
    ) -> tuple[list[ProjectRow], int]:
        """One page of the organisation's projects and the total matching the filter."""
        p = t.projects
        where: list[sa.ColumnElement[bool]] = [p.c.org_id == org_id]
        if name_filter:
            escaped = name_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(sa.func.lower(p.c.name).like(f"%{escaped.lower()}%", escape="\\"))
        # Names sort case-insensitively, as people read them.
        column = sa.func.lower(p.c.name) if sort_by == "name" else p.c[sort_by]
        ordering = (
            [column.asc(), p.c.id.asc()] if order == "asc" else [column.desc(), p.c.id.desc()]
        )
        with self._engine.connect() as c:
            total = int(c.scalar(sa.select(sa.func.count()).select_from(p).where(*where)) or 0)
            rows = rows_as(
                ProjectRow,
                c.execute(
                    sa.select(p).where(*where).order_by(*ordering).offset(offset).limit(limit)
                ),
            )
        return rows, total

    def data_counts(self, org_id: str, project_ids: Iterable[str]) -> dict[str, int]:
        """Number of logs per project."""
        wanted = list(project_ids)
        if not wanted:
            return {}
        lg = t.logs
        query = (
            sa.select(lg.c.project_id, sa.func.count())
            .where(lg.c.org_id == org_id, lg.c.project_id.in_(wanted))
            .group_by(lg.c.project_id)
        )
        with self._engine.connect() as c:
            found = {str(pid): int(n) for pid, n in c.execute(query)}
        return {pid: found.get(pid, 0) for pid in wanted}

    def rename_project(self, org_id: str, project_id: str, name: str) -> bool:
        """False when another project of the organisation has that name."""
        p = t.projects
        try:
            with self._engine.begin() as c:
                c.execute(
                    p.update()
                    .where(p.c.id == project_id, p.c.org_id == org_id)
                    .values(name=name, updated_at=time.time())
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def touch_project(self, org_id: str, project_id: str) -> None:
        p = t.projects
        with self._engine.begin() as c:
            c.execute(
                p.update()
                .where(p.c.id == project_id, p.c.org_id == org_id)
                .values(updated_at=time.time())
            )

    def delete_project(self, org_id: str, project_id: str) -> bool:
        """Delete a project with everything that belongs to it: its logs and whatever refers to
        them or to the project (deployments, registered configs, and tables added by other
        features).

        Found through the schema's foreign keys, so a table added later is cleaned up too.
        """
        p, lg = t.projects, t.logs
        with self._engine.begin() as c:
            owned = sa.select(p.c.id).where(p.c.id == project_id, p.c.org_id == org_id)
            if c.scalar(owned) is None:
                return False
            log_ids = sa.select(lg.c.id).where(lg.c.project_id == project_id)
            for table, column in _referencing(lg):
                if table is not lg:
                    c.execute(table.delete().where(column.in_(log_ids)))
            for table, column in _referencing(p):
                if table is not lg:
                    c.execute(table.delete().where(column == project_id))
            c.execute(lg.delete().where(lg.c.project_id == project_id))
            c.execute(p.delete().where(p.c.id == project_id))
        return True

    # --- sessions ------------------------------------------------------------------------------

    def get_or_create_session(self, org_id: str, reference_id: str) -> str:
        s = t.sessions
        return self._get_or_create(
            s,
            [s.c.org_id == org_id, s.c.reference_id == reference_id],
            {
                "id": ids.new_id(ids.SESSION),
                "org_id": org_id,
                "reference_id": reference_id,
                "created_at": time.time(),
            },
        )

    def session(self, org_id: str, session_id: str) -> SessionRow | None:
        s = t.sessions
        return one_as(
            self._engine, SessionRow, sa.select(s).where(s.c.id == session_id, s.c.org_id == org_id)
        )

    # --- model configs -------------------------------------------------------------------------

    def get_or_create_config(
        self,
        org_id: str,
        fingerprint: str,
        body: dict[str, Any],
        name: str | None,
        description: str | None,
    ) -> str:
        m = t.model_configs
        return self._get_or_create(
            m,
            [m.c.org_id == org_id, m.c.fingerprint == fingerprint],
            {
                "id": ids.new_id(ids.CONFIG),
                "org_id": org_id,
                "fingerprint": fingerprint,
                "body": body,
                "name": name,
                "description": description,
                "created_at": time.time(),
            },
        )

    def config(self, org_id: str, config_id: str) -> ConfigRow | None:
        m = t.model_configs
        return one_as(
            self._engine, ConfigRow, sa.select(m).where(m.c.id == config_id, m.c.org_id == org_id)
        )

    def register_config(self, org_id: str, project_id: str, config_id: str) -> None:
        """Record that ``config_id`` belongs to the project (idempotent; refreshes updated_at)."""
        pc = t.project_configs
        now = time.time()
        with self._engine.begin() as c:
            updated = c.execute(
                pc.update()
                .where(pc.c.project_id == project_id, pc.c.config_id == config_id)
                .values(updated_at=now)
            )
            if updated.rowcount == 0:
                try:
                    with c.begin_nested():
                        c.execute(
                            pc.insert().values(
                                project_id=project_id,
                                config_id=config_id,
                                org_id=org_id,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                except sa.exc.IntegrityError:
                    pass  # registered concurrently

    def config_uses(
        self, org_id: str, project_id: str, config_ids: Iterable[str] | None = None
    ) -> list[ConfigUse]:
        """Configs registered to the project or used by its logs, oldest first.

        ``config_ids`` limits the answer to those configs (they need not belong to the project:
        a config with no registration and no logs is reported with zero datapoints).
        """
        pc, lg, m = t.project_configs, t.logs, t.model_configs
        only = list(config_ids) if config_ids is not None else None
        registered = sa.select(pc.c.config_id, pc.c.created_at, pc.c.updated_at).where(
            pc.c.org_id == org_id, pc.c.project_id == project_id
        )
        used = (
            sa.select(
                lg.c.config_id,
                sa.func.count(),
                sa.func.min(lg.c.created_at),
                sa.func.max(lg.c.created_at),
            )
            .where(lg.c.org_id == org_id, lg.c.project_id == project_id)
            .group_by(lg.c.config_id)
        )
        if only is not None:
            registered = registered.where(pc.c.config_id.in_(only))
            used = used.where(lg.c.config_id.in_(only))
        with self._engine.connect() as c:
            reg = {str(r[0]): (float(r[1]), float(r[2])) for r in c.execute(registered)}
            stats = {str(r[0]): (int(r[1]), float(r[2]), float(r[3])) for r in c.execute(used)}
            wanted = set(reg) | set(stats) | set(only or ())
            configs = rows_as(
                ConfigRow,
                c.execute(sa.select(m).where(m.c.org_id == org_id, m.c.id.in_(wanted))),
            )
        uses = []
        for config in configs:
            count, first, last = stats.get(config.id, (0, None, None))
            reg_created, reg_updated = reg.get(config.id, (None, None))
            # Registered: since the registration; else since its first log in the project.
            created = reg_created if reg_created is not None else first
            if created is None:
                created = float(config.created_at)
            updated = max(x for x in (reg_updated, last, created) if x is not None)
            uses.append(
                ConfigUse(
                    config=config,
                    created_at=created,
                    updated_at=updated,
                    last_used=last if last is not None else created,
                    num_datapoints=count,
                )
            )
        uses.sort(key=lambda u: (u.created_at, u.config.id))
        return uses

    def home_project(self, org_id: str, config_id: str) -> str | None:
        """The project the config was most recently registered to, if any."""
        pc = t.project_configs
        with self._engine.connect() as c:
            found = c.scalar(
                sa.select(pc.c.project_id)
                .where(pc.c.org_id == org_id, pc.c.config_id == config_id)
                .order_by(pc.c.updated_at.desc())
                .limit(1)
            )
        return str(found) if found else None

    # --- environments --------------------------------------------------------------------------

    def default_environment(self, org_id: str) -> EnvironmentRow:
        """The organisation's default environment, created on first need (existing orgs
        included)."""
        e = t.environments
        query = sa.select(e).where(e.c.org_id == org_id, e.c.tag == DEFAULT_TAG)
        with self._engine.connect() as c:
            row = c.execute(query).first()
        if row is not None:
            return row_as(EnvironmentRow, row)
        try:
            with self._engine.begin() as c:
                c.execute(
                    e.insert().values(
                        id=ids.new_id(ENVIRONMENT_PREFIX),
                        org_id=org_id,
                        name=DEFAULT_ENVIRONMENT,
                        tag=DEFAULT_TAG,
                        created_at=time.time(),
                    )
                )
        except sa.exc.IntegrityError:
            pass  # a concurrent request created it
        with self._engine.connect() as c:
            row = c.execute(query).first()
        if row is None:
            raise RuntimeError(f"no default environment for organisation {org_id}")
        return row_as(EnvironmentRow, row)

    def environments(self, org_id: str) -> list[EnvironmentRow]:
        """Every environment of the organisation, the default one first."""
        self.default_environment(org_id)
        e = t.environments
        query = (
            sa.select(e)
            .where(e.c.org_id == org_id)
            .order_by((e.c.tag != DEFAULT_TAG), e.c.created_at, e.c.name)
        )
        with self._engine.connect() as c:
            return rows_as(EnvironmentRow, c.execute(query))

    def create_environment(self, org_id: str, name: str) -> EnvironmentRow | None:
        """A new non-default environment; None when the name is taken in the organisation."""
        self.default_environment(org_id)
        created = EnvironmentRow(
            id=ids.new_id(ENVIRONMENT_PREFIX),
            org_id=org_id,
            name=name,
            tag=OTHER_TAG,
            created_at=time.time(),
        )
        try:
            with self._engine.begin() as c:
                c.execute(
                    t.environments.insert().values(
                        id=created.id,
                        org_id=org_id,
                        name=name,
                        tag=OTHER_TAG,
                        created_at=created.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            return None
        return created

    def environment(
        self, org_id: str, *, env_id: str | None = None, name: str | None = None
    ) -> EnvironmentRow | None:
        """An environment by id or name; with neither, the default one."""
        default = self.default_environment(org_id)
        if env_id is None and name is None:
            return default
        e = t.environments
        which = e.c.id == env_id if env_id is not None else e.c.name == name
        query = sa.select(e).where(e.c.org_id == org_id, which)
        with self._engine.connect() as c:
            row = c.execute(query).first()
        return row_as(EnvironmentRow, row) if row else None

    # --- deployments ---------------------------------------------------------------------------

    def deployed_config_id(self, org_id: str, project_id: str, env_id: str) -> str | None:
        d = t.deployments
        with self._engine.connect() as c:
            found = c.scalar(
                sa.select(d.c.config_id).where(
                    d.c.org_id == org_id,
                    d.c.project_id == project_id,
                    d.c.environment_id == env_id,
                )
            )
        return str(found) if found else None

    def active_config_ids(self, org_id: str, project_ids: Iterable[str]) -> dict[str, str]:
        """project id -> the config deployed to the organisation's default environment."""
        wanted = list(project_ids)
        if not wanted:
            return {}
        env_id = self.default_environment(org_id).id
        d = t.deployments
        query = sa.select(d.c.project_id, d.c.config_id).where(
            d.c.org_id == org_id, d.c.environment_id == env_id, d.c.project_id.in_(wanted)
        )
        with self._engine.connect() as c:
            return {str(pid): str(cid) for pid, cid in c.execute(query)}

    def deploy(self, org_id: str, project_id: str, config_id: str, env_ids: list[str]) -> None:
        """Deploy the config to each environment (replacing what was there) and register it."""
        d = t.deployments
        now = time.time()
        with self._engine.begin() as c:
            for env_id in env_ids:
                c.execute(
                    d.delete().where(d.c.project_id == project_id, d.c.environment_id == env_id)
                )
                c.execute(
                    d.insert().values(
                        project_id=project_id,
                        environment_id=env_id,
                        org_id=org_id,
                        config_id=config_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
        self.register_config(org_id, project_id, config_id)
        self.touch_project(org_id, project_id)

    def undeploy(self, org_id: str, project_id: str, env_id: str) -> bool:
        """Remove the project's deployment in the environment; False when there was none."""
        d = t.deployments
        with self._engine.begin() as c:
            removed = c.execute(
                d.delete().where(
                    d.c.org_id == org_id,
                    d.c.project_id == project_id,
                    d.c.environment_id == env_id,
                )
            ).rowcount
        if removed:
            self.touch_project(org_id, project_id)
        return bool(removed)

    def deployments(self, org_id: str, project_id: str) -> list[Deployment]:
        """One entry per environment of the organisation, with the config deployed there (or
        None)."""
        d, m = t.deployments, t.model_configs
        envs = self.environments(org_id)
        query = (
            sa.select(d.c.environment_id, m)
            .join(m, m.c.id == d.c.config_id)
            .where(d.c.org_id == org_id, d.c.project_id == project_id)
        )
        with self._engine.connect() as c:
            by_env = {str(r.environment_id): row_as(ConfigRow, r) for r in c.execute(query)}
        return [Deployment(env, by_env.get(env.id)) for env in envs]
