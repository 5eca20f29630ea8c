"""`chatgate serve` serves through the HTTP edge (src/chatgate/edge/) in every worker process,
with its limits from the environment and an open-file limit sized for the connection cap."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.cli._serving import serve_env, wait_until_healthy
from tests.cli.test_cli import free_port
from tests.cli.test_workers import children


def soft_nofile(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit")


def test_workers_serve_through_the_edge_with_a_raised_fd_limit(tmp_path: Path) -> None:
    port = free_port()
    env = {**serve_env(tmp_path), "CHATGATE_MAX_HEADER_BYTES": "4096"}

    def low_fd_limit() -> None:  # soft 1024 under a hard 4096, as many systems start a service
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatgate", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=low_fd_limit,
        )
    try:
        wait_until_healthy(process, output, f"http://127.0.0.1:{port}")
        time.sleep(1.0)  # let the second worker finish starting
        workers = children(process.pid)
        assert len(workers) >= 2
        assert soft_nofile(process.pid) == 4096
        assert all(soft_nofile(pid) == 4096 for pid in workers)
        # 4096 connections could need 2 descriptors each: the cap is lowered to what fits.
        assert "CHATGATE_MAX_CONNECTIONS=4096 does not fit" in output.read_text()

        # Each new connection may land on either worker: all of them enforce the header cap.
        for _ in range(6):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"GET /v4/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                    + b"a" * 8192
                    + b"\r\n\r\n"
                )
                sock.settimeout(10)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 431 "), data[:200]
            assert json.loads(body)["detail"]["code"] == 431
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in output.read_text()
