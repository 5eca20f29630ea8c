"""Two chatgate servers (separate apps, as separate processes are) on one database: a project
renamed or deleted through one is seen by the other (its cached lookups expire, and a log
refused for a deleted project resets them)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if os.environ.get("CHATGATE_TEST_BACKEND") == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'shared.db'}"


def _two_servers(
    tmp_path: Path, fake: FakeOpenAI, database_url: str, cache_seconds: float
) -> Iterator[tuple[RunningServer, RunningServer]]:
    with ExitStack() as stack:
        servers = []
        for name in ("a", "b"):
            runner, running = start_server(
                tmp_path / name,
                fake.url,
                database_url=database_url,
                project_cache_seconds=cache_seconds,
            )
            stack.enter_context(runner)
            servers.append(running)
        yield servers[0], servers[1]


def _chat(server: RunningServer, project: str) -> Any:
    body = {
        "project": project,
        "model_config": {"model": "gpt-4o"},
        "messages": [{"role": "user", "content": "hello"}],
    }
    return server.post_chat(body)


def test_a_project_deleted_elsewhere_costs_at_most_one_failed_log(
    tmp_path: Path, fake: FakeOpenAI, database_url: str
) -> None:
    # A cache that never expires during the test: what is left is the reset on failure.
    for a, b in _two_servers(tmp_path, fake, database_url, cache_seconds=3600):
        first = _chat(a, "shared").json()["project_id"]
        assert _chat(b, "shared").json()["project_id"] == first  # b now has it cached
        with a.client() as client:
            assert client.delete(f"/projects/{first}").status_code == 204

        refused = _chat(b, "shared")
        assert refused.status_code == 503
        assert "could not be recorded" in refused.json()["detail"]["message"]

        retried = _chat(b, "shared")
        assert retried.status_code == 200, retried.text
        second = retried.json()["project_id"]
        assert second != first
        assert a.get_log(retried.json()["data"][0]["id"])["project_id"] == second


def test_a_project_renamed_elsewhere_is_seen_once_the_cache_expires(
    tmp_path: Path, fake: FakeOpenAI, database_url: str
) -> None:
    for a, b in _two_servers(tmp_path, fake, database_url, cache_seconds=0.5):
        original = _chat(a, "alpha").json()["project_id"]
        assert _chat(b, "alpha").json()["project_id"] == original
        with a.client() as client:
            renamed = client.patch(f"/projects/{original}", json={"name": "beta"})
        assert renamed.status_code == 200, renamed.text
        time.sleep(0.6)
        # "alpha" is a new project now; b no longer logs it into the renamed one.
        fresh = _chat(b, "alpha")
        assert fresh.status_code == 200
        assert fresh.json()["project_id"] != original
        assert _chat(b, "beta").json()["project_id"] == original
