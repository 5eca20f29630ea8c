"""`chatgate environments ...`: deployment environments of an organisation.

v4 has no endpoint that creates environments; operators add them here and clients find their
ids through ``GET /v4/projects/{id}/deployed-configs`` (one entry per environment).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chatgate.cli import _org_id, _store, _when, app, console, err_console
from chatgate.settings import Settings

environments_app = typer.Typer(
    help="Manage deployment environments (every organisation has 'production').",
    no_args_is_help=True,
)
app.add_typer(environments_app, name="environments")


@environments_app.command("create")
def environments_create(
    name: Annotated[str, typer.Argument(help="The new environment's name, e.g. staging.")],
    org: Annotated[str, typer.Option(help="Organisation name.")],
) -> None:
    """Add an environment; its id is printed on the last line."""
    store = _store(Settings())
    org_id = _org_id(store, org)
    created = store.projects.create_environment(org_id, name)
    if created is None:
        err_console.print(f"[red]organisation {org!r} already has an environment {name!r}[/red]")
        raise typer.Exit(1)
    err_console.print(f"Created environment {name!r} for {org!r}:")
    print(created.id)


@environments_app.command("list")
def environments_list(
    org: Annotated[str, typer.Option(help="Organisation name.")],
) -> None:
    """List the organisation's environments: id, name, tag, created."""
    store = _store(Settings())
    org_id = _org_id(store, org)
    table = Table("id", "name", "tag", "created")
    for env in store.projects.environments(org_id):
        table.add_row(env.id, env.name, env.tag, _when(env.created_at))
    console.print(table)
