"""The template renderer processes end with the server: SIGTERM while a bad template renders
still stops it promptly, and neither that nor a SIGKILL leaves a renderer behind."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cli._serving import create_key, serve_env
from tests.cli.test_crash_and_shutdown import Served
from tests.fakes.openai_server import FakeOpenAI

SLOW = {
    "project": "templates",
    "model_config": {
        "model": "m",
        "provider": "mock",
        "template_language": "jinja",
        "chat_template": [
            {
                "role": "system",
                "content": "{% for i in range(100000) %}{% for j in range(100000) %}"
                "{% endfor %}{% endfor %}",
            }
        ],
    },
    "messages": [{"role": "user", "content": "hello"}],
}


def renderers_of(server_pid: int) -> list[int]:
    """Live renderer processes started by the server (their last argument is its pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = b"chatgate.templating.worker" in argv and argv[-1] == str(server_pid).encode()
        if ours and state != "Z":  # a zombie has ended; only its exit status is left
            found.append(int(entry.name))
    return found


def wait_until_gone(server_pid: int, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := renderers_of(server_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def served(tmp_path: Path, fake: FakeOpenAI) -> tuple[Served, str]:
    env = serve_env(tmp_path, fake.url)
    key = create_key(env)
    return Served(tmp_path, env), key


def _render_slowly_in_the_background(url: str, key: str) -> list[int]:
    statuses: list[int] = []

    def send() -> None:
        try:
            response = httpx.post(
                f"{url}/v4/chat", json=SLOW, headers={"X-API-KEY": key}, timeout=30
            )
            statuses.append(response.status_code)
        except httpx.TransportError:
            statuses.append(0)

    threading.Thread(target=send, daemon=True).start()
    return statuses


def _wait_for_renderers(pid: int) -> list[int]:
    deadline = time.monotonic() + 15
    while not (pids := renderers_of(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def test_sigterm_while_a_template_renders_stops_promptly_and_leaves_no_renderer(
    served: tuple[Served, str],
) -> None:
    server, key = served
    statuses = _render_slowly_in_the_background(server.url, key)
    assert _wait_for_renderers(server.process.pid), "no renderer was started"
    time.sleep(0.3)  # the render is under way
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(15) == 0, server.output.read_text()
    assert time.monotonic() - started < 5.0
    # The request in flight was answered (its render hit the deadline) before the exit.
    assert statuses == [422]
    assert wait_until_gone(server.process.pid) == []
    assert "Traceback" not in server.output.read_text()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_killed_server_leaves_no_renderer(served: tuple[Served, str]) -> None:
    server, key = served
    _render_slowly_in_the_background(server.url, key)
    [pid] = _wait_for_renderers(server.process.pid)
    # Rendering, not starting: a start takes about 0.15 s of CPU.
    deadline = time.monotonic() + 10
    while cpu_seconds(pid) < 0.4 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.process.kill()  # no shutdown code runs: the kernel ends the renderers
    server.process.wait(10)
    # At once (PR_SET_PDEATHSIG): a renderer busy with the template would not see its stdin
    # close, and its CPU backstop is seconds away.
    assert wait_until_gone(server.process.pid, seconds=1.5) == []
