"""chatgate on PostgreSQL: the same chat, stream and read paths as on SQLite."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from humanloop import ApiException, Humanloop

from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def pg_server(tmp_path: Path, fake: FakeOpenAI, postgres_url: str) -> Iterator[RunningServer]:
    runner, running = start_server(tmp_path, fake.url, database_url=postgres_url)
    with runner:
        yield running


def test_chat_stream_and_logs_on_postgres(pg_server: RunningServer, fake: FakeOpenAI) -> None:
    assert pg_server.settings.resolved_database_url.startswith("postgresql://")
    hl = Humanloop(api_key=pg_server.key_a, host=pg_server.url)
    response = hl.chat(
        project="pg",
        session_reference_id="s",
        metadata={"k": 1},
        model_config={"model": "gpt-4o", "chat_template": [{"role": "system", "content": "{{x}}"}]},
        inputs={"x": "é"},
        messages=[{"role": "user", "content": "hello"}],
    )
    log = hl.logs.get(id=response.data[0].id)
    assert log.output == "Echo: hello" and log.inputs == {"x": "é"} and log.metadata == {"k": 1}
    assert hl.sessions.get(id=response.session_id).datapoints_count == 1

    async def stream() -> list[dict[str, object]]:
        chunks = await hl.chat_stream(
            project="pg",
            model_config={"model": "gpt-4o"},
            messages=[{"role": "user", "content": "a b"}],
        )
        return [c async for c in chunks.content]

    chunks = asyncio.run(stream())
    assert "".join(str(c["output"]) for c in chunks) == "Echo: a b"
    assert hl.logs.get(id=str(chunks[0]["id"])).output == "Echo: a b"

    other = Humanloop(api_key=pg_server.key_b, host=pg_server.url)
    with pytest.raises(ApiException) as raised:
        other.logs.get(id=response.data[0].id)
    assert raised.value.status == 404


def test_concurrent_calls_each_get_one_log_on_postgres(pg_server: RunningServer) -> None:
    body = {
        "project": "pg-load",
        "model_config": {"model": "m", "provider": "mock"},
        "messages": [{"role": "user", "content": "x"}],
    }
    ids: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=pg_server.url, headers={"X-API-KEY": pg_server.key_a}) as http:
            for _ in range(20):
                response = http.post("/chat", json=body)
                assert response.status_code == 200
                with lock:
                    ids.append(response.json()["data"][0]["id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = pg_server.store()
    org_id = store.orgs.org_id_by_name("acme")
    stored = {row.id for row in store.logs.recent_logs(org_id=org_id, limit=1000)}
    assert stored == set(ids) and len(ids) == 160


def test_the_server_talks_to_postgres_through_asyncpg(
    tmp_path: Path, fake: FakeOpenAI, postgres_url: str
) -> None:
    """Seen from PostgreSQL: every session the running server holds was opened by asyncpg.

    The server's engine passes ``server_settings`` (application_name "chatgate"), a connect
    argument only asyncpg takes: psycopg refuses it as an invalid connection option. So sessions
    named "chatgate" exist only if asyncpg opened them, and no other session of the server's
    database (the set-up's psycopg ones are closed) may remain.
    """
    import psycopg

    runner, running = start_server(tmp_path, fake.url, database_url=postgres_url)
    with runner:
        # The doors see services only; the services hold the one store of the process.
        store = runner.server.config.app.state.chatgate.logs._store
        assert store.is_async and store.engine.dialect.driver == "asyncpg"
        with running.client() as http:
            created = http.post(
                "/chat",
                json={
                    "project": "seen",
                    "model_config": {"model": "m", "provider": "mock"},
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
            assert created.status_code == 200
            assert http.get(f"/logs/{created.json()['data'][0]['id']}").status_code == 200
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
    assert names and set(names) == {"chatgate"}, names
