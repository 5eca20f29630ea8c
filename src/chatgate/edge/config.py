"""The one way chatgate's uvicorn is configured and run: the server process and the tests.

``server_config`` builds a uvicorn ``Config`` that serves through ``EdgeProtocol`` with the limits
from ``Settings``; ``serve`` runs it, in this process or under uvicorn's worker supervisor.
"""

from __future__ import annotations

import logging
import resource
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from chatgate.edge.protocol import EdgeProtocol
from chatgate.settings import Settings

log = logging.getLogger("chatgate.edge")

# File descriptors kept for what is not a client connection: the database and its journal, the
# listening socket, log files, the connection pool's spares, the resolver.
_RESERVED_FDS = 128


@dataclass(frozen=True)
class Limits:
    """What one connection may hold; documented on the settings of the same names."""

    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    body_min_bytes_per_second: int
    keepalive_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
            body_min_bytes_per_second=settings.body_min_bytes_per_second,
            keepalive_timeout_seconds=settings.keepalive_timeout_seconds,
            max_connections=connection_cap(settings.max_connections),
        )


class EdgeConfig(uvicorn.Config):
    """uvicorn's Config carrying the limits to each ``EdgeProtocol`` (and, pickled, to each
    ``--workers`` process)."""

    def __init__(self, app: Any, limits: Limits, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits


def server_config(app: Any, settings: Settings, **options: Any) -> EdgeConfig:
    """A uvicorn Config for ``app`` (an ASGI app, or an import string with ``factory=True``).

    ``options`` are uvicorn's own (host, port, workers, log_level ...). WebSockets are off:
    chatgate has none, and uvicorn's WebSocket handshake answers errors in plain text.
    """
    return EdgeConfig(app, Limits.from_settings(settings), http=EdgeProtocol, ws="none", **options)


def serve(config: EdgeConfig) -> None:
    """Run ``config`` until shut down: here, or with ``workers > 1`` under uvicorn's supervisor
    (each worker process builds its own app from the import string)."""
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(3)  # uvicorn's exit status for a failed start-up


def raise_fd_limit() -> None:
    """Raise this process's soft open-file limit to its hard limit.

    The soft limit is often 1024, far below what the kernel allows: the connection cap, not the
    descriptor table, should be what refuses clients. Worker processes inherit the new limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # some systems cap it lower (macOS: OPEN_MAX)
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)


def connection_cap(configured: int) -> int:
    """``configured``, lowered if the open-file limit cannot serve it.

    A client connection can need a second descriptor while its provider call runs (the upstream
    pool has no limit of its own), and the rest of the process needs some.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    fits = max(1, (soft - _RESERVED_FDS) // 2)
    if configured > fits:
        log.warning(
            "CHATGATE_MAX_CONNECTIONS=%d does not fit the open-file limit of %d (each connection "
            "may need 2 descriptors); using %d. Raise the limit (ulimit -n, LimitNOFILE=) to "
            "allow more.",
            configured,
            soft,
            fits,
        )
        return fits
    return configured
