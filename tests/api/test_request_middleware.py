"""An unexpected error answers a v4 500 and leaves the keep-alive connection usable, with one
log entry (no second traceback from the server)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from chatgate.app import create_app
from chatgate.settings import Settings
from tests.conftest import UvicornThread


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: chatgate\r\n\r\n".encode()


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))[15:]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_a_500_keeps_the_connection_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(data_dir=tmp_path, vendor_env={}))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    with UvicornThread(app) as runner, socket.create_connection(("127.0.0.1", runner.port)) as sock:
        caplog.set_level(logging.ERROR)
        sock.settimeout(10)
        sock.sendall(_request("/boom"))
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 500")
        assert b'"type":"internal_server_error"' in body and b"a bug" not in body
        # The same connection serves the next request.
        sock.sendall(_request("/healthz"))
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
    tracebacks = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]


def test_a_request_cancelled_before_answering_gets_the_v4_500(tmp_path: Path) -> None:
    """Starlette's handlers catch exceptions, not cancellations: the last-resort answer is
    still JSON in the v4 shape rather than uvicorn's plain text."""
    import asyncio

    import httpx

    app = create_app(Settings(data_dir=tmp_path, vendor_env={}))

    @app.get("/cancelled")
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with UvicornThread(app) as runner:
        response = httpx.get(f"http://127.0.0.1:{runner.port}/cancelled", timeout=10)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]["type"] == "internal_server_error"
