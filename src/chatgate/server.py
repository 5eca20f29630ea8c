"""The serving process: ``python -m chatgate.server --host H --port P [--workers N]``.

``chatgate serve`` does the one-time set-up (migrations, the first organisation and key) and then
replaces itself with this module, so the long-running process never imports what only set-up
needs (Alembic, Mako, the CLI toolkit) and stays small.
"""

from __future__ import annotations

import argparse
import signal

from fastapi import FastAPI

from chatgate.app import create_app
from chatgate.edge import raise_fd_limit, serve, server_config
from chatgate.settings import Settings


def app() -> FastAPI:
    """The application factory each worker process calls (settings come from the environment)."""
    return create_app(Settings())


def main() -> None:
    parser = argparse.ArgumentParser(prog="chatgate.server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    raise_fd_limit()  # before the connection cap is sized from it; workers inherit it
    settings = Settings()
    # One worker: the app is built here. Several: uvicorn's supervisor starts each worker
    # process, which builds its own app (its own store, log writer and upstream pool).
    target: FastAPI | str = create_app(settings) if args.workers == 1 else "chatgate.server:app"
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight requests
    # and streams, then the lifespan drains the log writer) and afterwards re-raises the signal
    # into the handler that was installed before it. A no-op handler there makes a completed
    # graceful shutdown exit with status 0, as process supervisors expect.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    config = server_config(
        target,
        settings,
        factory=args.workers > 1,
        workers=args.workers,
        host=args.host,
        port=args.port,
        loop="uvloop",
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    serve(config)


if __name__ == "__main__":
    main()
