"""The ``chatgate`` command: thin commands over the store and the services."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from chatgate.moments import from_epoch
from chatgate.settings import Settings
from chatgate.store.engine import display_url
from chatgate.store.sql import Store

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


def _store(settings: Settings) -> Store:
    store = Store(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    store.upgrade()
    return store


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    # isoformat, not strftime: "%Y" gives "1", not "0001", for year 1 on glibc.
    return from_epoch(epoch).replace(tzinfo=None).isoformat(" ", "seconds")


def _org_id(store: Store, name: str) -> str:
    org_id = store.orgs.org_id_by_name(name)
    if org_id is None:
        err_console.print(
            f"[red]no organisation named {name!r}[/red] (create one with `chatgate keys create --org {name}`)"
        )
        raise typer.Exit(1)
    return org_id


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes sharing the port.")] = 1,
) -> None:
    """Run the server. On first start, create an organisation and print its API key.

    Set-up (migrations, the first key) happens once, here, before any worker starts.
    """
    from chatgate.providers.prices import PriceFileError, PriceTable
    from chatgate.services.auth import create_key
    from chatgate.services.credentials import load_or_create_secret

    settings = Settings()
    try:
        PriceTable(settings.prices_file)  # a bad CHATGATE_PRICES_FILE stops here, not in a worker
    except PriceFileError as exc:
        from rich.markup import escape

        err_console.print(f"[red]CHATGATE_PRICES_FILE:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    host = host or settings.host
    port = port or settings.port
    store = _store(settings)
    load_or_create_secret(settings)
    url = f"http://{host}:{port}/v4"
    if store.orgs.count_orgs() == 0:
        key, _prefix = create_key(store, "default")
        console.print("[bold]First start:[/bold] created organisation [cyan]default[/cyan].")
        console.print("API key (shown once; store it now):")
        print(key, flush=True)
    store.close()
    console.print(f"Database: {display_url(settings.resolved_database_url)}", soft_wrap=True)
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
    from chatgate.services.auth import create_key

    store = _store(Settings())
    key, prefix = create_key(store, org)
    err_console.print(f"Created key {prefix}… for organisation {org!r}. It is shown only once:")
    print(key)


@keys_app.command("list")
def keys_list(
    org: Annotated[str | None, typer.Option(help="Only this organisation.")] = None,
) -> None:
    """List keys: prefix, organisation, created, last used (never the key itself)."""
    store = _store(Settings())
    org_id = _org_id(store, org) if org else None
    table = Table("prefix", "org", "created", "last used", "status")
    for row in store.orgs.list_api_keys(org_id):
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
    store = _store(Settings())
    if not store.orgs.revoke_api_key(prefix):
        err_console.print(f"[red]no active key with prefix {prefix!r}[/red]")
        raise typer.Exit(1)
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
    from chatgate.providers import BUILTIN
    from chatgate.providers.url_guard import CallerURLSpec
    from chatgate.services.credentials import fernet_for, load_or_create_secret, save_provider_key

    settings = Settings()
    row = BUILTIN.get(provider)
    if endpoint is not None and not isinstance(row, CallerURLSpec):
        err_console.print(
            f"[red]--endpoint is only for providers whose endpoint varies per customer "
            f"(openai_azure), not {provider!r}[/red]"
        )
        raise typer.Exit(2)
    if endpoint is not None and not endpoint.startswith(("https://", "http://")):
        err_console.print(f"[red]--endpoint must be an http(s) URL, got {endpoint!r}[/red]")
        raise typer.Exit(2)
    store = _store(settings)
    org_id = _org_id(store, org)
    key = sys.stdin.readline().strip()
    if not key:
        err_console.print(
            "[red]no key on stdin[/red] (e.g. `printenv OPENAI_API_KEY | chatgate provider-keys set --org acme openai`)"
        )
        raise typer.Exit(1)
    fernet = fernet_for(load_or_create_secret(settings))
    save_provider_key(store, fernet, org_id, provider, key, endpoint)
    where = f", to be sent only to {endpoint}" if endpoint else ""
    console.print(f"Saved the {provider} key for {org!r}{where}.")
    if endpoint is None and isinstance(row, CallerURLSpec):
        console.print(
            f"Without --endpoint it is sent only to the server's {row.base_url_env}; "
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
    store = _store(Settings())
    org_id = _org_id(store, org) if org else None
    project_id = None
    if project:
        if project.startswith("pr_"):
            project_id = project
        elif org_id:
            project_id = store.project_id_by_name(org_id, project)
            if project_id is None:
                err_console.print(f"[red]no project named {project!r} in {org!r}[/red]")
                raise typer.Exit(1)
        else:
            err_console.print("[red]--project by name needs --org[/red]")
            raise typer.Exit(1)
    rows = store.logs.recent_logs(org_id=org_id, project_id=project_id, limit=limit)
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
    settings = Settings()
    _store(settings).close()
    console.print(
        f"Database is up to date: {display_url(settings.resolved_database_url)}", soft_wrap=True
    )


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
