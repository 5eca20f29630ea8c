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

from chatgate.cli import _admin, app, err_console, fail
from chatgate.errors import ChatgateError


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
    with _admin() as admin:
        try:
            total, entries = admin.export_project(org, project)
        except ChatgateError as exc:
            raise fail(exc) from None
        sink: IO[bytes] = output.open("wb") if output else sys.stdout.buffer
        try:
            with _progress() as progress:
                task = progress.add_task(f"exporting {project}", total=total)
                for entry in entries:
                    sink.write(orjson.dumps(entry) + b"\n")
                    progress.advance(task)
        finally:
            if output:
                sink.close()
            else:
                sink.flush()
    err_console.print(f"exported {total} logs of {project!r}")


@app.command(name="import")
def import_(
    org: Annotated[str, typer.Option(help="Organisation to import into (created if needed).")],
    file: Annotated[
        Path | None, typer.Argument(help="JSON Lines file (default: standard input).")
    ] = None,
) -> None:
    """Read logs written by `chatgate export`; ids are kept and logs already present are skipped."""
    lines = file.read_bytes().splitlines() if file else sys.stdin.buffer.read().splitlines()
    entries = [line for line in lines if line.strip()]
    added = skipped = 0
    with _admin() as admin:
        org_id = admin.import_target(org)
        with _progress() as progress:
            task = progress.add_task("importing", total=len(entries))
            for number, line in enumerate(entries, 1):
                try:
                    inserted = admin.import_entry(org_id, orjson.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    progress.stop()
                    err_console.print(f"[red]line {number}: {exc}[/red]")
                    raise typer.Exit(1) from None
                added, skipped = (added + 1, skipped) if inserted else (added, skipped + 1)
                progress.advance(task)
    err_console.print(f"imported {added} logs, {skipped} already present")
