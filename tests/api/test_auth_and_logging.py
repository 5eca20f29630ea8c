"""Key revocation, durable logging and the group-commit writer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx

from chatgate.domain import LogRecord
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter
from tests.conftest import start_server
from tests.fakes.openai_server import FakeOpenAI

BODY = {
    "project": "p",
    "model_config": {"model": "m", "provider": "mock"},
    "messages": [{"role": "user", "content": "x"}],
}


def test_revoked_key_stops_working(tmp_path: Path, fake: FakeOpenAI) -> None:
    runner, server = start_server(tmp_path, fake.url, auth_cache_seconds=0)
    with runner:
        assert server.post_chat(BODY).status_code == 200
        store = server.store()
        assert store.orgs.revoke_api_key(server.key_a[:11])
        assert server.post_chat(BODY).status_code == 401
        assert server.post_chat(BODY, key=server.key_b).status_code == 200


def test_every_200_has_its_log_committed(tmp_path: Path, fake: FakeOpenAI) -> None:
    """Concurrent calls: each id returned with a 200 is in the database when the 200 arrives."""
    runner, server = start_server(tmp_path, fake.url)
    ids: list[str] = []
    lock = threading.Lock()
    missing: list[str] = []

    def client() -> None:
        reader = Store(f"sqlite:///{server.db_path}")
        org_id = reader.orgs.org_id_by_name("acme")
        assert org_id
        with httpx.Client(base_url=server.url, headers={"X-API-KEY": server.key_a}) as http:
            for _ in range(15):
                response = http.post("/chat", json=BODY)
                assert response.status_code == 200
                log_id = response.json()["data"][0]["id"]
                if reader.logs.log(org_id, log_id) is None:  # read straight after the 200
                    missing.append(log_id)
                with lock:
                    ids.append(log_id)
        reader.close()

    with runner:
        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert missing == []
    assert len(set(ids)) == 120


def test_writer_groups_concurrent_records_into_few_transactions(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.upgrade()
    org_id = store.orgs.get_or_create_org("o")
    project_id = store.projects.get_or_create_project(org_id, "p")
    config_id = store.projects.get_or_create_config(org_id, "f" * 64, {}, None, None)
    commits: list[int] = []
    original = store.insert_logs

    def counting_insert(records: Any) -> None:
        records = list(records)
        commits.append(len(records))
        original(records)

    store.insert_logs = counting_insert  # type: ignore[method-assign]

    async def main() -> None:
        writer = LogWriter(store)
        writer.start()
        records = [
            LogRecord(
                id=f"data_{i}",
                org_id=org_id,
                project_id=project_id,
                config_id=config_id,
                provider="mock",
                model="m",
                created_at=float(i),
            )
            for i in range(200)
        ]
        await asyncio.gather(*(writer.write([r]) for r in records))
        await writer.close()

    asyncio.run(main())
    assert sum(commits) == 200
    assert len(commits) < 20  # many callers share one transaction
    assert len(store.logs.recent_logs(org_id=org_id, limit=500)) == 200
