"""kill -9 under load loses no acknowledged call; SIGTERM finishes what is in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatgate.store.sql import Store
from tests.cli._serving import create_key, serve_env, wait_until_healthy
from tests.cli.test_cli import free_port
from tests.fakes.openai_server import FakeOpenAI

BODY = {
    "project": "crash",
    "model_config": {"model": "m", "provider": "mock"},
    "messages": [{"role": "user", "content": "hello"}],
}


class Served:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = data_dir / f"serve-{self.port}.out"
        with self.output.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatgate", "serve", "--port", str(self.port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_until_healthy(self.process, self.output, self.url)


@pytest.fixture(params=["sqlite", "postgres"])
def environment(
    request: pytest.FixtureRequest, tmp_path: Path, fake: FakeOpenAI
) -> Iterator[tuple[dict[str, str], str]]:
    env = serve_env(tmp_path, fake.url)
    if request.param == "postgres":
        env["CHATGATE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    yield env, create_key(env)


def test_kill_9_under_load_loses_no_acknowledged_call(
    environment: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, key = environment
    served = Served(tmp_path, env)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(
            base_url=f"{served.url}/v4", headers={"X-API-KEY": key}, timeout=10
        ) as http:
            while not stop.is_set():
                try:
                    response = http.post("/chat", json=BODY)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(response.json()["data"][0]["id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    served.process.kill()  # SIGKILL: no shutdown code runs
    served.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(15)
    assert len(acknowledged) > 50

    restarted = Served(tmp_path, env)  # recovery on start (SQLite WAL replay) must work too
    restarted.process.terminate()
    restarted.process.wait(30)
    url = env.get("CHATGATE_DATABASE_URL") or f"sqlite:///{tmp_path / 'chatgate.db'}"
    store = Store(url)
    org_id = store.orgs.org_id_by_name("acme")
    stored = [row.id for row in store.logs.recent_logs(org_id=org_id, limit=1_000_000)]
    store.close()
    assert len(stored) == len(set(stored))
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged calls have no log"


def test_sigterm_finishes_in_flight_streams_and_drains(tmp_path: Path, fake: FakeOpenAI) -> None:
    env = serve_env(tmp_path, fake.url)
    key = create_key(env)
    served = Served(tmp_path, env)
    fake.chunk_delay = 0.1
    body = {
        "project": "term",
        "stream": True,
        "model_config": {"model": "gpt-4o"},
        "messages": [{"role": "user", "content": "one two three four five six seven eight"}],
    }
    frames: list[bytes] = []
    http = httpx.Client(base_url=f"{served.url}/v4", headers={"X-API-KEY": key}, timeout=30)
    with http, http.stream("POST", "/chat", json=body) as response:
        chunks = response.iter_raw()
        frames.append(next(chunks))
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):  # no new connections once shutting down
            httpx.post(f"{served.url}/v4/chat", json=body, headers={"X-API-KEY": key}, timeout=2)
        frames.extend(chunks)
    assert served.process.wait(30) == 0, served.output.read_text()
    raw = b"".join(frames)
    events = [json.loads(block[6:]) for block in raw.strip().split(b"\n\n")]
    assert events[-1]["data"][0]["finish_reason"] == "stop"
    log_id = events[0]["data"][0]["id"]
    store = Store(f"sqlite:///{tmp_path / 'chatgate.db'}")
    org_id = store.orgs.org_id_by_name("acme")
    row = store.logs.log(org_id, log_id) if org_id else None
    assert row is not None and row.output == "Echo: one two three four five six seven eight"


def test_sigterm_during_a_database_outage_exits_0_with_the_calls_journaled(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    from tests.api.test_database_outage import Postgres

    postgres = Postgres()
    try:
        env = {**serve_env(tmp_path, fake.url), "CHATGATE_DATABASE_URL": postgres.url}
        key = create_key(env)
        served = Served(tmp_path, env)
        chat = {"url": f"{served.url}/v4/chat", "json": BODY, "headers": {"X-API-KEY": key}}
        assert httpx.post(**chat).status_code == 200  # key, project and config now cached
        postgres.stop()
        during = httpx.post(**chat)
        assert during.status_code == 200, during.text
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(30) == 0, served.output.read_text()
        output = served.output.read_text()
        assert "Traceback" not in output, output
        journals = list(tmp_path.glob("journal-*.jsonl"))
        assert journals and during.json()["data"][0]["id"] in journals[0].read_text()
    finally:
        postgres.close()
