"""`chatgate export` and `chatgate import`: a project's logs as JSON Lines.

One line per log, self-contained: the log row exactly as stored (ids, epoch times, every column)
with the project, session, model config and feedback it refers to. Importing recreates those rows
with the same ids, and skips what is already there, so a file can be imported twice, or into
another database (a store moving from SQLite to another engine), without duplicates.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chatgate.cli import _org_id, _store, app, err_console
from chatgate.settings import Settings
from chatgate.store.logs_repo import LogsRepo


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )


@app.command()
def export(
    org: Annotated[str, typer.Option(help="Organisation name.")],
    project: Annotated[str, typer.Option(help="Project name.")],
    output: Annotated[
        Path | None, typer.Option(help="File to write (default: standard output).")
    ] = None,
) -> None:
    """Write a project's logs as JSON Lines, oldest first, every stored field and id kept."""
    store = _store(Settings())
    try:
        org_id = _org_id(store, org)
        project_id = store.projects.project_id_by_name(org_id, project)
        if project_id is None:
            err_console.print(f"[red]no project named {project!r} in {org!r}[/red]")
            raise typer.Exit(1)
        repo = LogsRepo(store)
        total = repo.count_project_logs(org_id, project_id)
        sink: IO[bytes] = output.open("wb") if output else sys.stdout.buffer
        try:
            with _progress() as progress:
                task = progress.add_task(f"exporting {project}", total=total)
                for entry in repo.export_project(org_id, project_id):
                    sink.write(orjson.dumps(entry) + b"\n")
                    progress.advance(task)
        finally:
            if output:
                sink.close()
            else:
                sink.flush()
        err_console.print(f"exported {total} logs of {project!r}")
    finally:
        store.close()


@app.command(name="import")
def import_(
    org: Annotated[str, typer.Option(help="Organisation to import into (created if needed).")],
    file: Annotated[
        Path | None, typer.Argument(help="JSON Lines file (default: standard input).")
    ] = None,
) -> None:
    """Read logs written by `chatgate export`; ids are kept and logs already present are skipped."""
    store = _store(Settings())
    try:
        org_id = store.orgs.get_or_create_org(org)
        repo = LogsRepo(store)
        lines = file.read_bytes().splitlines() if file else sys.stdin.buffer.read().splitlines()
        entries = [line for line in lines if line.strip()]
        added = skipped = 0
        with _progress() as progress:
            task = progress.add_task("importing", total=len(entries))
            for number, line in enumerate(entries, 1):
                try:
                    inserted = repo.import_entry(org_id, orjson.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    progress.stop()
                    err_console.print(f"[red]line {number}: {exc}[/red]")
                    raise typer.Exit(1) from None
                added, skipped = (added + 1, skipped) if inserted else (added, skipped + 1)
                progress.advance(task)
        err_console.print(f"imported {added} logs, {skipped} already present")
    finally:
        store.close()
