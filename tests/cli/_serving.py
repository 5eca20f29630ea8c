"""What the tests that run `chatgate` as a process share: its environment, a first key, and
waiting until a started server answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def serve_env(data_dir: Path, openai_url: str | None = None) -> dict[str, str]:
    """The environment of a `chatgate` process on a SQLite database in ``data_dir`` (and, if
    given, the OpenAI provider pointed at a fake)."""
    env = {**os.environ, "CHATGATE_DATA_DIR": str(data_dir)}
    env.pop("CHATGATE_DATABASE_URL", None)
    if openai_url is not None:
        env.update(OPENAI_BASE_URL=openai_url, OPENAI_API_KEY="sk-test")
    return env


def create_key(env: dict[str, str], org: str = "acme") -> str:
    """`chatgate keys create --org ORG`: the new key (the last word it prints)."""
    done = subprocess.run(
        [sys.executable, "-m", "chatgate", "keys", "create", "--org", org],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.split()[-1]


def wait_until_healthy(
    process: subprocess.Popen[str] | subprocess.Popen[bytes], output: Path, origin: str
) -> None:
    """Wait (at most 30 s) for ``origin``/healthz to answer 200; fail with the server's output
    if it exits first."""
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        try:
            if httpx.get(f"{origin}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
