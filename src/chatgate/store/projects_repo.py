"""Store queries for projects, environments, deployments and project-registered configs.

Functions over the shared :class:`~chatgate.store.sql.Store` (its engine), synchronous and short
like the Store's own methods; the server calls them through ``Store.call``. Every query
takes the caller's ``org_id``: a row of another organisation is indistinguishable from a missing
one. Results are plain dicts keyed by column name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from chatgate import ids
from chatgate.store import schema as t

if TYPE_CHECKING:
    from chatgate.store.sql import Store

#: Id prefix of environments (Humanloop's are ``env_…``).
ENVIRONMENT_PREFIX = "env"
DEFAULT_ENVIRONMENT = "production"
DEFAULT_TAG = "default"
OTHER_TAG = "other"

SortBy = Literal["created_at", "updated_at", "name"]
Order = Literal["asc", "desc"]


def _row(row: sa.Row[Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row._mapping.items()}


@dataclass(frozen=True, slots=True)
class ConfigUse:
    """A config as used in or registered to one project (the v4 ``ProjectConfigResponse``)."""

    config: dict[str, Any]  # the model_configs row
    created_at: float  # registered, or first used, in the project
    updated_at: float
    last_used: float  # newest log with it, else created_at
    num_datapoints: int


# --- environments ------------------------------------------------------------------------------


def default_environment(store: Store, org_id: str) -> dict[str, Any]:
    """The organisation's default environment, created on first need (existing orgs included)."""
    e = t.environments
    query = sa.select(e).where(e.c.org_id == org_id, e.c.tag == DEFAULT_TAG)
    with store.engine.connect() as c:
        row = c.execute(query).first()
    if row is not None:
        return _row(row)
    try:
        with store.engine.begin() as c:
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
    with store.engine.connect() as c:
        row = c.execute(query).first()
    if row is None:
        raise RuntimeError(f"no default environment for organisation {org_id}")
    return _row(row)


def environments(store: Store, org_id: str) -> list[dict[str, Any]]:
    """Every environment of the organisation, the default one first."""
    default_environment(store, org_id)
    e = t.environments
    query = (
        sa.select(e)
        .where(e.c.org_id == org_id)
        .order_by((e.c.tag != DEFAULT_TAG), e.c.created_at, e.c.name)
    )
    with store.engine.connect() as c:
        return [_row(r) for r in c.execute(query)]


def create_environment(store: Store, org_id: str, name: str) -> dict[str, Any] | None:
    """A new non-default environment; None when the name is taken in the organisation."""
    default_environment(store, org_id)
    values = {
        "id": ids.new_id(ENVIRONMENT_PREFIX),
        "org_id": org_id,
        "name": name,
        "tag": OTHER_TAG,
        "created_at": time.time(),
    }
    try:
        with store.engine.begin() as c:
            c.execute(t.environments.insert().values(**values))
    except sa.exc.IntegrityError:
        return None
    return values


def environment(
    store: Store, org_id: str, *, env_id: str | None = None, name: str | None = None
) -> dict[str, Any] | None:
    """An environment by id or name; with neither, the default one."""
    if env_id is None and name is None:
        return default_environment(store, org_id)
    default_environment(store, org_id)
    e = t.environments
    query = sa.select(e).where(e.c.org_id == org_id)
    query = query.where(e.c.id == env_id) if env_id is not None else query.where(e.c.name == name)
    with store.engine.connect() as c:
        row = c.execute(query).first()
    return _row(row) if row else None


# --- projects ----------------------------------------------------------------------------------


def project(store: Store, org_id: str, project_id: str) -> dict[str, Any] | None:
    return store.project(org_id, project_id)


def project_by_name(store: Store, org_id: str, name: str) -> dict[str, Any] | None:
    p = t.projects
    with store.engine.connect() as c:
        row = c.execute(sa.select(p).where(p.c.org_id == org_id, p.c.name == name)).first()
    return _row(row) if row else None


def create_project(store: Store, org_id: str, name: str) -> dict[str, Any] | None:
    """A new project; None when the organisation already has one with that name."""
    now = time.time()
    values = {
        "id": ids.new_id(ids.PROJECT),
        "org_id": org_id,
        "name": name,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with store.engine.begin() as c:
            c.execute(t.projects.insert().values(**values))
    except sa.exc.IntegrityError:
        return None
    return values


def list_projects(
    store: Store,
    org_id: str,
    *,
    offset: int,
    limit: int,
    name_filter: str | None,
    sort_by: SortBy,
    order: Order,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the organisation's projects and the total matching the filter."""
    p = t.projects
    where: list[sa.ColumnElement[bool]] = [p.c.org_id == org_id]
    if name_filter:
        escaped = name_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(sa.func.lower(p.c.name).like(f"%{escaped.lower()}%", escape="\\"))
    # Names sort case-insensitively, as people read them.
    column = sa.func.lower(p.c.name) if sort_by == "name" else p.c[sort_by]
    ordering = [column.asc(), p.c.id.asc()] if order == "asc" else [column.desc(), p.c.id.desc()]
    with store.engine.connect() as c:
        total = int(c.scalar(sa.select(sa.func.count()).select_from(p).where(*where)) or 0)
        rows = [
            _row(r)
            for r in c.execute(
                sa.select(p).where(*where).order_by(*ordering).offset(offset).limit(limit)
            )
        ]
    return rows, total


def data_counts(store: Store, org_id: str, project_ids: Iterable[str]) -> dict[str, int]:
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
    with store.engine.connect() as c:
        found = {str(pid): int(n) for pid, n in c.execute(query)}
    return {pid: found.get(pid, 0) for pid in wanted}


def rename_project(store: Store, org_id: str, project_id: str, name: str) -> bool:
    """False when another project of the organisation has that name."""
    p = t.projects
    try:
        with store.engine.begin() as c:
            c.execute(
                p.update()
                .where(p.c.id == project_id, p.c.org_id == org_id)
                .values(name=name, updated_at=time.time())
            )
    except sa.exc.IntegrityError:
        return False
    return True


def touch_project(store: Store, org_id: str, project_id: str) -> None:
    p = t.projects
    with store.engine.begin() as c:
        c.execute(
            p.update()
            .where(p.c.id == project_id, p.c.org_id == org_id)
            .values(updated_at=time.time())
        )


def _referencing(table: sa.Table) -> list[tuple[sa.Table, sa.Column[Any]]]:
    """Every (table, column) of the schema with a foreign key to ``table``."""
    found = []
    for other in t.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is table:
                found.append((other, fk.parent))
    return found


def delete_project(store: Store, org_id: str, project_id: str) -> bool:
    """Delete a project with everything that belongs to it: its logs and whatever refers to them
    or to the project (deployments, registered configs, and tables added by other features).

    Found through the schema's foreign keys, so a table added later is cleaned up too.
    """
    p, lg = t.projects, t.logs
    with store.engine.begin() as c:
        if c.scalar(sa.select(p.c.id).where(p.c.id == project_id, p.c.org_id == org_id)) is None:
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


# --- configs of a project ----------------------------------------------------------------------


def register_config(store: Store, org_id: str, project_id: str, config_id: str) -> None:
    """Record that ``config_id`` belongs to the project (idempotent; refreshes updated_at)."""
    pc = t.project_configs
    now = time.time()
    with store.engine.begin() as c:
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
    store: Store, org_id: str, project_id: str, config_ids: Iterable[str] | None = None
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
    with store.engine.connect() as c:
        reg = {str(r[0]): (float(r[1]), float(r[2])) for r in c.execute(registered)}
        stats = {str(r[0]): (int(r[1]), float(r[2]), float(r[3])) for r in c.execute(used)}
        wanted = set(reg) | set(stats) | set(only or ())
        configs = {
            str(r.id): _row(r)
            for r in c.execute(sa.select(m).where(m.c.org_id == org_id, m.c.id.in_(wanted)))
        }
    uses = []
    for config_id, config in configs.items():
        count, first, last = stats.get(config_id, (0, None, None))
        reg_created, reg_updated = reg.get(config_id, (None, None))
        # Registered: since the registration; else since its first log in the project.
        created = reg_created if reg_created is not None else first
        if created is None:
            created = float(config["created_at"])
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
    uses.sort(key=lambda u: (u.created_at, u.config["id"]))
    return uses


# --- deployments -------------------------------------------------------------------------------


def deployed_config_id(store: Store, org_id: str, project_id: str, env_id: str) -> str | None:
    d = t.deployments
    with store.engine.connect() as c:
        found = c.scalar(
            sa.select(d.c.config_id).where(
                d.c.org_id == org_id, d.c.project_id == project_id, d.c.environment_id == env_id
            )
        )
    return str(found) if found else None


def active_config_ids(store: Store, org_id: str, project_ids: Iterable[str]) -> dict[str, str]:
    """project id -> the config deployed to the organisation's default environment."""
    wanted = list(project_ids)
    if not wanted:
        return {}
    env_id = default_environment(store, org_id)["id"]
    d = t.deployments
    query = sa.select(d.c.project_id, d.c.config_id).where(
        d.c.org_id == org_id, d.c.environment_id == env_id, d.c.project_id.in_(wanted)
    )
    with store.engine.connect() as c:
        return {str(pid): str(cid) for pid, cid in c.execute(query)}


def deploy(store: Store, org_id: str, project_id: str, config_id: str, env_ids: list[str]) -> None:
    """Deploy the config to each environment (replacing what was there) and register it."""
    d = t.deployments
    now = time.time()
    with store.engine.begin() as c:
        for env_id in env_ids:
            c.execute(d.delete().where(d.c.project_id == project_id, d.c.environment_id == env_id))
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
    register_config(store, org_id, project_id, config_id)
    touch_project(store, org_id, project_id)


def undeploy(store: Store, org_id: str, project_id: str, env_id: str) -> bool:
    """Remove the project's deployment in the environment; False when there was none."""
    d = t.deployments
    with store.engine.begin() as c:
        removed = c.execute(
            d.delete().where(
                d.c.org_id == org_id, d.c.project_id == project_id, d.c.environment_id == env_id
            )
        ).rowcount
    if removed:
        touch_project(store, org_id, project_id)
    return bool(removed)


def deployments(store: Store, org_id: str, project_id: str) -> list[dict[str, Any]]:
    """One entry per environment of the organisation, with the config deployed there (or None).

    Keys: environment (the row), config (the model_configs row or None).
    """
    d, m = t.deployments, t.model_configs
    envs = environments(store, org_id)
    query = (
        sa.select(d.c.environment_id, m)
        .join(m, m.c.id == d.c.config_id)
        .where(d.c.org_id == org_id, d.c.project_id == project_id)
    )
    with store.engine.connect() as c:
        by_env = {str(r.environment_id): _row(r) for r in c.execute(query)}
    out = []
    for env in envs:
        config = by_env.get(env["id"])
        if config is not None:
            config.pop("environment_id", None)
        out.append({"environment": env, "config": config})
    return out


def home_project(store: Store, org_id: str, config_id: str) -> str | None:
    """The project the config was most recently registered to, if any."""
    pc = t.project_configs
    with store.engine.connect() as c:
        found = c.scalar(
            sa.select(pc.c.project_id)
            .where(pc.c.org_id == org_id, pc.c.config_id == config_id)
            .order_by(pc.c.updated_at.desc())
            .limit(1)
        )
    return str(found) if found else None


class ProjectsRepo:
    """Projects, sessions, model configs, environments and deployments (being filled in)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine
