"""The ``chatgate`` command: thin commands over the services (services/admin.py).

Each command parses its options, calls the service and prints; an operator's mistake is a chatgate
error whose message is printed (no traceback) with a non-zero exit code.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from chatgate.errors import ChatgateError
from chatgate.moments import from_epoch
from chatgate.services.admin import Admin, check_price_file, database_of
from chatgate.settings import Settings

app = typer.Typer(
    help="chatgate: a self-hosted server for Humanloop's v4 API.", no_args_is_help=True
)
keys_app = typer.Typer(help="Manage chatgate API keys (X-API-KEY).", no_args_is_help=True)
provider_keys_app = typer.Typer(
    help="Manage an organisation's saved provider keys.", no_args_is_help=True
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(provider_keys_app, name="provider-keys")
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)


def _admin(settings: Settings | None = None) -> Admin:
    return Admin(settings or Settings())


def fail(exc: ChatgateError, code: int = 1) -> typer.Exit:
    """Print an operator's mistake (the service's message) and return the exit to raise."""
    from rich.markup import escape

    err_console.print(f"[red]{escape(exc.message)}[/red]", soft_wrap=True)
    return typer.Exit(code)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    # isoformat, not strftime: "%Y" gives "1", not "0001", for year 1 on glibc.
    return from_epoch(epoch).replace(tzinfo=None).isoformat(" ", "seconds")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes sharing the port.")] = 1,
) -> None:
    """Run the server. On first start, create an organisation and print its API key.

    Set-up (migrations, the first key) happens once, here, before any worker starts.
    """
    settings = Settings()
    try:
        check_price_file(settings)  # a bad CHATGATE_PRICES_FILE stops here, not in a worker
    except ChatgateError as exc:
        from rich.markup import escape

        err_console.print(f"[red]CHATGATE_PRICES_FILE:[/red] {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from None
    host = host or settings.host
    port = port or settings.port
    url = f"http://{host}:{port}/v4"
    with _admin(settings) as admin:
        key = admin.first_start()
    if key is not None:
        console.print("[bold]First start:[/bold] created organisation [cyan]default[/cyan].")
        console.print("API key (shown once; store it now):")
        print(key, flush=True)
    console.print(f"Database: {database_of(settings)}", soft_wrap=True)
    console.print(f'chatgate is listening on [bold]{url}[/bold]  (Humanloop(host="{url}"))')
    sys.stdout.flush()
    sys.stderr.flush()
    # Set-up is done: become the slim serving process (see chatgate/server.py).
    server = [sys.executable, "-m", "chatgate.server", "--host", host, "--port", str(port)]
    server += ["--workers", str(workers)]
    os.execv(sys.executable, server)


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organisation name (created if new).")],
) -> None:
    """Create an API key; the key alone is printed on the last line."""
    with _admin() as admin:
        key, prefix = admin.create_key(org)
    err_console.print(f"Created key {prefix}… for organisation {org!r}. It is shown only once:")
    print(key)


@keys_app.command("list")
def keys_list(
    org: Annotated[str | None, typer.Option(help="Only this organisation.")] = None,
) -> None:
    """List keys: prefix, organisation, created, last used (never the key itself)."""
    with _admin() as admin:
        try:
            rows = admin.keys(org)
        except ChatgateError as exc:
            raise fail(exc) from None
    table = Table("prefix", "org", "created", "last used", "status")
    for row in rows:
        table.add_row(
            row.prefix,
            row.org_name,
            _when(row.created_at),
            _when(row.last_used_at),
            "revoked" if row.revoked_at else "active",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `keys list` shows.")],
) -> None:
    """Revoke a key (servers stop accepting it within CHATGATE_AUTH_CACHE_SECONDS)."""
    with _admin() as admin:
        try:
            admin.revoke_key(prefix)
        except ChatgateError as exc:
            raise fail(exc) from None
    console.print(f"Revoked {prefix}.")


@provider_keys_app.command("set")
def provider_keys_set(
    provider: Annotated[str, typer.Argument(help="Provider name, e.g. openai.")],
    org: Annotated[str, typer.Option(help="Organisation name.")],
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="The endpoint this key belongs to (openai_azure: https://RESOURCE.openai.azure.com). "
            "The key is sent nowhere else."
        ),
    ] = None,
) -> None:
    """Save a provider key for an organisation, read from stdin, encrypted at rest."""
    with _admin() as admin:
        try:
            admin.check_provider_key_target(provider, endpoint)
        except ChatgateError as exc:
            raise fail(exc, 2) from None
        key = sys.stdin.readline().strip()
        if not key:
            err_console.print(
                "[red]no key on stdin[/red] (e.g. `printenv OPENAI_API_KEY | "
                "chatgate provider-keys set --org acme openai`)"
            )
            raise typer.Exit(1)
        try:
            bound_to = admin.save_provider_key(org, provider, key, endpoint)
        except ChatgateError as exc:
            raise fail(exc) from None
    where = f", to be sent only to {endpoint}" if endpoint else ""
    console.print(f"Saved the {provider} key for {org!r}{where}.")
    if bound_to is not None:
        console.print(
            f"Without --endpoint it is sent only to the server's {bound_to}; "
            "requests cannot redirect it to another endpoint."
        )


@app.command()
def logs(
    org: Annotated[str | None, typer.Option(help="Only this organisation.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project (name or pr_ id).")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show recent logs."""
    with _admin() as admin:
        try:
            rows = admin.recent_logs(org, project, limit)
        except ChatgateError as exc:
            raise fail(exc) from None
    if as_json:
        for row in rows:
            fields = dataclasses.asdict(row)
            fields.pop("org_id", None)
            sys.stdout.write(orjson.dumps(fields, default=str).decode() + "\n")
        return
    table = Table("created", "id", "project", "model", "finish", "tokens", "ms", "output / error")
    for row in rows:
        tokens = (
            f"{row.prompt_tokens}+{row.output_tokens}" if row.prompt_tokens is not None else "-"
        )
        text = row.error or (row.output or "")
        table.add_row(
            _when(row.created_at),
            row.id,
            row.project_name,
            f"{row.provider}/{row.model}",
            row.finish_reason or "-",
            tokens,
            f"{row.duration * 1000:.0f}" if row.duration is not None else "-",
            text.replace("\n", " ")[:60],
        )
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    with _admin() as admin:
        database = admin.database
    console.print(f"Database is up to date: {database}", soft_wrap=True)


# Commands defined in their own modules register themselves on `app` when imported.
from chatgate.cli import data_commands, project_commands  # noqa: E402, F401


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # A CHATGATE_* variable the server cannot run with: say which and why, no traceback.
        for error in exc.errors(include_url=False, include_input=False):
            name = f"CHATGATE_{str(error['loc'][0]).upper()}: " if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            err_console.print(f"[red]invalid setting:[/red] {name}{message}", soft_wrap=True)
        raise SystemExit(2) from None
