"""`chatgate environments ...`: deployment environments of an organisation.

v4 has no endpoint that creates environments; operators add them here and clients find their
ids through ``GET /v4/projects/{id}/deployed-configs`` (one entry per environment).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chatgate.cli import _admin, _when, app, console, err_console, fail
from chatgate.errors import ChatgateError

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
    with _admin() as admin:
        try:
            created = admin.create_environment(org, name)
        except ChatgateError as exc:
            raise fail(exc) from None
    err_console.print(f"Created environment {name!r} for {org!r}:")
    print(created.id)


@environments_app.command("list")
def environments_list(
    org: Annotated[str, typer.Option(help="Organisation name.")],
) -> None:
    """List the organisation's environments: id, name, tag, created."""
    with _admin() as admin:
        try:
            environments = admin.environments(org)
        except ChatgateError as exc:
            raise fail(exc) from None
    table = Table("id", "name", "tag", "created")
    for env in environments:
        table.add_row(env.id, env.name, env.tag, _when(env.created_at))
    console.print(table)
