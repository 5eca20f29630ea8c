"""What the HTTP edge (src/chatgate/edge/) costs ``POST /v4/chat``.

Two chatgates on the same machine in the same run, differing only in the HTTP protocol: uvicorn's
plain httptools protocol (``plain``) and chatgate's ``EdgeProtocol`` (``edge``, what
``chatgate serve`` runs). The mock provider answers, so nothing upstream adds noise; logging is
durable SQLite, as by default. Both servers are pinned to core 0, wrk to core 1; the phases
alternate between the two, in a different order each repetition.

    .venv/bin/python -m bench.edge_bench                 # 3 repetitions x 10 s, c = 1 and 64
    .venv/bin/python -m bench.edge_bench --duration 5 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import Load, free_port, run_wrk, write_wrk_script

CONCURRENCIES = (1, 64)
KINDS = ("plain", "edge")
BODY = {
    "project": "bench",
    "model_config": {"model": "mock-1", "provider": "mock", "max_tokens": 50},
    "messages": [{"role": "user", "content": "Hello"}],
}


def serve(kind: str, port: int) -> None:
    """The server process: chatgate's app behind one of the two protocols."""
    import uvicorn

    from chatgate.app import create_app
    from chatgate.edge import server_config
    from chatgate.settings import Settings

    settings = Settings()
    app = create_app(settings)
    options = {
        "host": "127.0.0.1",
        "port": port,
        "loop": "uvloop",
        "log_level": "warning",
        "access_log": False,
    }
    if kind == "plain":
        config = uvicorn.Config(app, http="httptools", ws="none", **options)  # type: ignore[arg-type]
    else:
        config = server_config(app, settings, **options)
    uvicorn.Server(config).run()


def start(kind: str, root: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    from chatgate.services.auth import create_key
    from chatgate.store.sql import Store

    data_dir = root / kind
    data_dir.mkdir()
    store = Store(f"sqlite:///{data_dir / 'chatgate.db'}")
    store.upgrade()
    key, _ = create_key(store, "bench")
    store.close()
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "bench.edge_bench"]
    process = subprocess.Popen(
        [*command, "--serve", kind, "--port", str(port)],
        env={**os.environ, "CHATGATE_DATA_DIR": str(data_dir)},
        stderr=(data_dir / "stderr.log").open("w"),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            import httpx

            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process, port, key
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} server did not start")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.edge_bench")
    parser.add_argument("--serve", choices=KINDS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, action="append", help="wrk connections (repeatable; 1 and 64)"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    concurrencies = tuple(args.concurrency or CONCURRENCIES)
    results: dict[tuple[str, int], list[Load]] = {(k, c): [] for k in KINDS for c in concurrencies}
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        root = Path(tmp)
        servers = {kind: start(kind, root) for kind in KINDS}
        try:
            scripts = {
                kind: write_wrk_script(root / f"{kind}.lua", BODY, {"X-API-KEY": key})
                for kind, (_, _, key) in servers.items()
            }
            for kind, (process, port, _) in servers.items():  # warm-up
                run_wrk(f"http://127.0.0.1:{port}/v4/chat", scripts[kind], 16, 2, process.pid)
            for repetition in range(args.repeat):
                order = KINDS if repetition % 2 == 0 else KINDS[::-1]
                for concurrency in concurrencies:
                    for kind in order:
                        process, port, _ = servers[kind]
                        load = run_wrk(
                            f"http://127.0.0.1:{port}/v4/chat",
                            scripts[kind],
                            concurrency,
                            args.duration,
                            process.pid,
                        )
                        results[(kind, concurrency)].append(load)
                        print(
                            f"rep {repetition + 1} c={concurrency:<3} {kind:<6} "
                            f"{load.rps:8.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
                            f"p99 {load.p99_ms:6.2f} ms  cpu {load.cpu_ms_per_request:.3f} ms/req  "
                            f"errors {load.errors}",
                            flush=True,
                        )
        finally:
            for process, _, _ in servers.values():
                process.terminate()
                process.wait(30)

    print(f"\nmedians of {args.repeat} x {args.duration} s, POST /v4/chat (mock provider)")
    print("| c | protocol | req/s | p50 ms | p99 ms | server CPU ms/req | errors |")
    print("|---|---|---|---|---|---|---|")
    for concurrency in concurrencies:
        for kind in KINDS:
            loads = results[(kind, concurrency)]
            print(
                f"| {concurrency} | {kind} "
                f"| {statistics.median(x.rps for x in loads):.0f} "
                f"| {statistics.median(x.p50_ms for x in loads):.2f} "
                f"| {statistics.median(x.p99_ms for x in loads):.2f} "
                f"| {statistics.median(x.cpu_ms_per_request for x in loads):.3f} "
                f"| {sum(x.errors for x in loads)} |"
            )


if __name__ == "__main__":
    main()
