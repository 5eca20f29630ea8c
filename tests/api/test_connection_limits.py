"""The HTTP edge against a hostile or careless client (src/chatgate/edge/).

A real uvicorn on 127.0.0.1 serving through chatgate's protocol, with raw sockets for what no
HTTP client library would send. Every load is bounded in time; latency bounds are generous (the
machine is shared) but far below what the attacks cost before these limits.
"""

from __future__ import annotations

import contextlib
import json
import select
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.fakes.openai_server import FakeOpenAI

# Short deadlines so the test sees them pass; the defaults are in settings.py.
DEADLINE = 1.5
LIMITS: dict[str, Any] = {
    "header_timeout_seconds": DEADLINE,
    "body_timeout_seconds": DEADLINE,
    "body_min_bytes_per_second": 4096,
    "keepalive_timeout_seconds": DEADLINE,
}


@pytest.fixture
def edge(tmp_path: Path, fake: FakeOpenAI) -> Iterator[RunningServer]:
    runner, running = start_server(tmp_path, fake.url, **LIMITS)
    with runner:
        yield running


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1].split("/", 1)[0])


def connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=10)
    return sock


def chat_body(text: str = "hello") -> bytes:
    body = {
        "project": "edge",
        "model_config": {"model": "mock-1", "provider": "mock"},
        "messages": [{"role": "user", "content": text}],
    }
    return json.dumps(body).encode()


def chat_head(server: RunningServer, length: int) -> bytes:
    return (
        f"POST /v4/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {server.key_a}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def v4_error(self) -> dict[str, Any]:
        """The body as chatgate's v4 error shape (asserting it is one)."""
        assert self.headers["content-type"] == "application/json", self.headers
        detail: dict[str, Any] = json.loads(self.body)["detail"]
        assert detail["code"] == self.status
        assert set(detail) == {"type", "message", "code", "origin"}
        return detail


def read_answer(sock: socket.socket, timeout: float = 10) -> Answer:
    """One HTTP/1.1 response (with a Content-Length) from ``sock``, reading nothing beyond it
    (a pipelined response may follow)."""
    sock.settimeout(timeout)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"connection closed before a response: {head!r}"
        head += byte
    status_line, *lines = head.decode("latin-1").strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = b""
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(min(65536, int(headers["content-length"]) - len(body)))
        assert chunk, "connection closed inside a response body"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body)


def closed_after(sock: socket.socket, timeout: float = 5) -> bytes:
    """Everything the server still sends until it closes ``sock`` (fails if it does not)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def vm_rss_kib() -> int:
    """This process's resident memory; the server under test runs in one of its threads."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_100_mb_header_is_refused_at_the_limit_without_buffering(
    edge: RunningServer,
) -> None:
    chunk = b"a" * (1 << 20)
    sock = connect(edge)
    sock.sendall(b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    rss_before = vm_rss_kib()
    started = time.monotonic()
    answered_after = None
    sent = 0
    # Like the attacker: keep sending the 100 MB whatever comes back, until the server hangs up.
    while sent < 100 << 20 and time.monotonic() - started < 20:
        if answered_after is None and select.select([sock], [], [], 0)[0]:
            answered_after = time.monotonic() - started
        try:
            sent += sock.send(chunk)
        except OSError:  # reset once the server stops reading what follows its answer
            break
    rss_growth_mib = (vm_rss_kib() - rss_before) / 1024
    answer = read_answer(sock)
    assert answer.status == 431
    assert answer.headers["connection"] == "close"
    assert "CHATGATE_MAX_HEADER_BYTES" in answer.v4_error()["message"]
    assert answered_after is not None and answered_after < 2, answered_after
    assert rss_growth_mib < 8, f"server RSS grew {rss_growth_mib:.1f} MiB"
    sock.close()


@dataclass
class Attacker:
    """One hostile socket: what it does, and what the server did to it."""

    kind: str
    sock: socket.socket
    dribble: bool  # sends one byte per tick
    clock_from: float  # when the server's deadline for it started
    closed_after: float | None = None
    received: bytes = b""


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def real_client(server: RunningServer, stop: threading.Event, into: Latencies) -> None:
    """A well-behaved application calling /v4/chat back to back until told to stop."""
    with server.client() as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.post("/chat", content=chat_body())
            except httpx.HTTPError as exc:
                into.failures.append(repr(exc))
                continue
            into.seconds.append(time.monotonic() - started)
            if response.status_code != 200:
                into.failures.append(f"{response.status_code} {response.text[:200]}")


def open_attackers(server: RunningServer, per_kind: int) -> list[Attacker]:
    attackers = []
    for _ in range(per_kind):
        # Connects and sends nothing.
        attackers.append(Attacker("silent", connect(server), False, time.monotonic()))
        # Sends its request head a byte at a time, never finishing it.
        sock = connect(server)
        sock.sendall(b"POST /v4/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        attackers.append(Attacker("slow-header", sock, True, time.monotonic()))
        # Sends a complete, authenticated head and then its body a byte at a time.
        sock = connect(server)
        sock.sendall(chat_head(server, 100_000))
        attackers.append(Attacker("slow-body", sock, True, time.monotonic()))
    for _ in range(per_kind):
        # Makes one request, then keeps the connection open without using it.
        sock = connect(server)
        sock.sendall(b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock).status == 401
        attackers.append(Attacker("idle-keepalive", sock, False, time.monotonic()))
    return attackers


def watch(attackers: list[Attacker], seconds: float, tick: float = 0.25) -> None:
    """Dribble a byte per tick on the dribbling sockets; note when each one is closed."""
    with selectors.DefaultSelector() as selector:
        for attacker in attackers:
            attacker.sock.setblocking(False)
            selector.register(attacker.sock, selectors.EVENT_READ, attacker)
        started = next_tick = time.monotonic()
        while selector.get_map() and time.monotonic() - started < seconds:
            for key, _ in selector.select(timeout=0.05):
                attacker = key.data
                try:
                    chunk = attacker.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                attacker.received += chunk
                if not chunk:
                    attacker.closed_after = time.monotonic() - attacker.clock_from
                    selector.unregister(attacker.sock)
            if time.monotonic() >= next_tick:
                next_tick += tick
                for key in list(selector.get_map().values()):
                    if key.data.dribble:
                        with contextlib.suppress(OSError):  # closed: the read side notices
                            key.data.sock.send(b"x")


def test_slow_and_idle_sockets_are_closed_at_their_deadlines_while_clients_go_on(
    edge: RunningServer,
) -> None:
    stop = threading.Event()
    latencies = Latencies()
    client = threading.Thread(target=real_client, args=(edge, stop, latencies))
    attackers = open_attackers(edge, per_kind=75)  # 300 sockets
    client.start()
    try:
        watch(attackers, seconds=DEADLINE + 6)
    finally:
        stop.set()
        client.join(30)
        for attacker in attackers:
            attacker.sock.close()

    assert not latencies.failures, latencies.failures[:3]
    assert len(latencies.seconds) >= 5
    assert max(latencies.seconds) < 1.0, sorted(latencies.seconds)[-5:]
    by_kind: dict[str, list[Attacker]] = {}
    for attacker in attackers:
        by_kind.setdefault(attacker.kind, []).append(attacker)
    for kind, group in by_kind.items():
        times = [a.closed_after for a in group]
        assert None not in times, f"{kind}: {times.count(None)} of {len(group)} never closed"
        # Around the deadline: not at once, and not renewed by a byte every 0.25 s. (The client
        # starts its clocks a little after the server does, hence the margin below.)
        assert min(t for t in times if t is not None) >= DEADLINE * 0.7, (kind, times)
        assert max(t for t in times if t is not None) < DEADLINE + 3, (kind, times)
    for attacker in by_kind["slow-header"] + by_kind["slow-body"]:
        status_line = attacker.received.split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 408 Request Timeout", attacker.received[:200]
    for attacker in by_kind["silent"] + by_kind["idle-keepalive"]:
        assert attacker.received == b"", attacker.received[:200]  # closed quietly


def test_beyond_the_connection_cap_a_503_with_retry_after_then_service_again(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    runner, server = start_server(
        tmp_path, fake.url, max_connections=20, keepalive_timeout_seconds=30
    )
    with runner:
        holders = []
        for _ in range(20):
            sock = connect(server)  # each answered once, so the server surely holds it
            sock.sendall(b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_answer(sock).status == 401
            holders.append(sock)
        extra = connect(server)
        extra.sendall(b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = read_answer(extra)
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.v4_error()["type"] == "service_unavailable_error"
        assert closed_after(extra) == b""
        extra.close()

        for sock in holders[:5]:
            sock.close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the closes as soon as it runs; allow it a moment
            with connect(server) as sock:
                sock.sendall(b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if (status := read_answer(sock).status) == 401 or time.monotonic() > deadline:
                    break
            time.sleep(0.05)
        assert status == 401
        for sock in holders[5:]:
            sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="request-line"),
        pytest.param(b"GET /v4/projects HTTP/1.1\r\nNo colon here\r\n\r\n", id="header"),
        pytest.param(
            b"POST /v4/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n",
            id="chunked-framing",
        ),
        pytest.param(
            b"POST /v4/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
            b"Content-Length: 6\r\n\r\nhello!",
            id="two-content-lengths",
        ),
        pytest.param(b"GET http://[::1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id="target"),
    ],
)
def test_malformed_http_gets_a_400_in_the_v4_shape(
    edge: RunningServer, request_bytes: bytes
) -> None:
    with connect(edge) as sock:
        sock.sendall(request_bytes)
        answer = read_answer(sock)
        assert answer.status == 400
        error = answer.v4_error()
        assert error["type"] == "bad_request_error"
        assert error["message"].startswith("malformed HTTP request: ")
        assert answer.headers["connection"] == "close"
        assert closed_after(sock) == b""


def test_a_refused_client_that_stays_silent_is_disconnected(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    """After a refusal the server reads and drops input for a moment, then closes its side for
    good, even when the client neither sends nor closes."""
    runner, server = start_server(tmp_path, fake.url, **LIMITS, max_connections=3)
    with runner:
        connections = runner.server.server_state.connections
        silent = []
        for request_bytes in (
            b"GARBAGE\r\n\r\n",
            b"GET /v4/projects HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        ):
            sock = connect(server)
            sock.sendall(request_bytes)
            assert read_answer(sock).status in (400, 431)
            silent.append(sock)
        over_cap = [connect(server) for _ in range(3)]  # the third is over the cap of 3
        deadline = time.monotonic() + DEADLINE + 5
        while len(connections) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(connections) == 0
        for sock in silent + over_cap:
            sock.close()


def test_a_405_names_the_allowed_methods(edge: RunningServer) -> None:
    with edge.client() as client:
        response = client.delete("/chat")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["detail"]["type"] == "method_not_allowed_error"


def test_heads_within_the_limit_and_large_bodies_pass(edge: RunningServer) -> None:
    with connect(edge) as sock:
        # A head just under the limit (64 KiB) is served.
        padding = "p" * (64 * 1024 - 200)
        sock.sendall(
            f"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {padding}\r\n\r\n".encode()
        )
        assert read_answer(sock).status == 401
        # A small head and a 1 MB body in one write: only the head counts against the limit.
        body = chat_body("b" * 1_000_000)
        sock.sendall(chat_head(edge, len(body)) + body)
        answer = read_answer(sock)
        assert answer.status == 200, answer.body[:300]
        assert json.loads(answer.body)["data"][0]["output"] == "You said: " + "b" * 1_000_000
        # Two pipelined requests in one write are both answered, in order.
        small = chat_body("one")
        sock.sendall(
            chat_head(edge, len(small)) + small + b"GET /v4/projects HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert read_answer(sock).status == 200
        assert read_answer(sock).status == 401
        # The limit applies to every request of a connection, not only to its first.
        sock.sendall(b"GET /v4/projects HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert read_answer(sock).status == 431


def test_a_slow_but_steady_body_is_not_cut_off(edge: RunningServer) -> None:
    """The body deadline is a grace period plus a minimum rate: a 24 kB body at ~8 kB/s takes
    3 s, twice the grace period, and is well above the minimum rate (4 kB/s here)."""
    body = chat_body("s" * 24_000)
    with connect(edge) as sock:
        sock.sendall(chat_head(edge, len(body)))
        started = time.monotonic()
        for offset in range(0, len(body), 1000):
            sock.sendall(body[offset : offset + 1000])
            time.sleep(0.125)
        assert time.monotonic() - started > DEADLINE * 1.5
        answer = read_answer(sock)
    assert answer.status == 200, answer.body[:300]


def test_an_upgrade_request_is_answered_as_plain_http_and_the_connection_closed(
    edge: RunningServer,
) -> None:
    with connect(edge) as sock:
        sock.sendall(
            b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        answer = read_answer(sock)
        assert answer.status == 401
        assert answer.v4_error()["type"] == "unauthorized_error"
        assert closed_after(sock) == b""
