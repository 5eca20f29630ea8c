"""`chatgate serve --workers N`: several processes, one SQLite file, no failed request."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from chatgate.store.sql import Store
from tests.cli._serving import serve_env, wait_until_healthy
from tests.cli.test_cli import free_port

BODY = {
    "project": "workers",
    "model_config": {"model": "m", "provider": "mock"},
    "messages": [{"role": "user", "content": "hello"}],
}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_workers_share_the_port_and_the_database(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    env = serve_env(tmp_path)
    database_url = f"sqlite:///{tmp_path / 'chatgate.db'}"
    if backend == "postgres":
        database_url = request.getfixturevalue("postgres_url")
        env["CHATGATE_DATABASE_URL"] = database_url
    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, output, url)
        keys = [line for line in output.read_text().splitlines() if line.startswith("cg_")]
        assert len(keys) == 1  # set-up ran once, before the workers
        time.sleep(1.0)  # let the second worker finish starting
        assert len(children(process.pid)) >= 2

        statuses: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=f"{url}/v4", headers={"X-API-KEY": keys[0]}) as http:
                for _ in range(40):
                    # A new connection per request, so both workers take a share.
                    status = http.post(
                        "/chat", json=BODY, headers={"Connection": "close"}
                    ).status_code
                    with lock:
                        statuses.append(status)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 320
        if backend == "postgres":
            # Each worker opened its own asyncpg engine on its own loop (their sessions carry
            # the application_name only the asyncpg engine sets; see test_postgres_server.py).
            import psycopg

            with psycopg.connect(database_url, autocommit=True) as connection:
                names = [
                    row[0]
                    for row in connection.execute(
                        "SELECT application_name FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ]
            assert len(names) >= 2 and set(names) == {"chatgate"}, names
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0, output.read_text()
    store = Store(database_url)
    org_id = store.orgs.org_id_by_name("default")
    assert org_id
    assert len(store.logs.recent_logs(org_id=org_id, limit=1000)) == 320
