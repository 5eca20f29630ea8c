"""The serving process: ``python -m chatgate.server --host H --port P``.

``chatgate serve`` does the one-time set-up (migrations, the first organisation and key) and then
replaces itself with this module, so the long-running process never imports what only set-up
needs (Alembic, Mako, the CLI toolkit) and stays small.
"""

from __future__ import annotations

import argparse

import uvicorn

from chatgate.app import create_app
from chatgate.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="chatgate.server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(Settings()),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
