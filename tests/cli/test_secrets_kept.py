"""Secrets stay secret on screen and on disk: the database password is masked wherever a command
names the database, and the SQLite files (with their -wal and -shm) are readable by their owner
only, like secret.key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli import run
from tests.cli.test_crash_and_shutdown import BODY, Served

PASSWORD = "hunter2-not-for-screens"


def _with_password(url: str) -> str:
    """The test PostgreSQL trusts local connections, so any password works: put one in."""
    scheme, rest = url.split("://", 1)
    user, at, host = rest.partition("@")
    assert at, url
    return f"{scheme}://{user.split(':')[0]}:{PASSWORD}@{host}"


def test_commands_mask_the_database_password(tmp_path: Path, postgres_url: str) -> None:
    env = {
        **os.environ,
        "CHATGATE_DATA_DIR": str(tmp_path),
        "CHATGATE_DATABASE_URL": _with_password(postgres_url),
    }
    upgraded = subprocess.run(
        [sys.executable, "-m", "chatgate", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert PASSWORD not in upgraded.stdout + upgraded.stderr
    assert "Database is up to date: postgresql://postgres:***@" in upgraded.stdout
    served = Served(tmp_path, env)
    try:
        served.process.terminate()
        served.process.wait(30)
    finally:
        if served.process.poll() is None:
            served.process.kill()
    output = served.output.read_text()
    assert "Database: postgresql://" in output and "***" in output
    assert PASSWORD not in output


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    env = {**os.environ, "CHATGATE_DATA_DIR": str(tmp_path)}
    env.pop("CHATGATE_DATABASE_URL", None)
    database = tmp_path / "chatgate.db"
    old = os.umask(0o022)  # the usual umask: files would be world-readable by default
    try:
        key = run(tmp_path, "keys", "create", "--org", "acme").stdout.strip().splitlines()[-1]
        served = Served(tmp_path, env)
        try:
            response = httpx.post(
                f"{served.url}/v4/chat", headers={"X-API-KEY": key}, json=BODY, timeout=10
            )
            assert response.status_code == 200, response.text
            for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
                assert _mode(path) == 0o600, f"{path.name}: {oct(_mode(path))}"
        finally:
            served.process.terminate()
            served.process.wait(30)
    finally:
        os.umask(old)


def test_an_older_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    run(tmp_path, "keys", "create", "--org", "acme")
    database = tmp_path / "chatgate.db"
    database.chmod(0o644)
    run(tmp_path, "keys", "list")
    assert _mode(database) == 0o600


@pytest.mark.parametrize("command", [["db", "upgrade"], ["keys", "list"]])
def test_sqlite_url_is_shown_as_is(tmp_path: Path, command: list[str]) -> None:
    # Nothing to mask in a file URL; the masking must not mangle it.
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", *command],
        env={**os.environ, "CHATGATE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if command[0] == "db":
        assert f"sqlite:///{tmp_path / 'chatgate.db'}" in result.stdout
