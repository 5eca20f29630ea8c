"""Running a fake provider: an aiohttp app on 127.0.0.1, in its own thread and event loop, so a
test's chatgate (in another thread) talks to it over a real socket."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

from aiohttp import web


class BackgroundServer:
    def __init__(self, routes: Callable[[web.Application], object], name: str) -> None:
        self._routes = routes
        self._name = name

    def start(self) -> int:
        """Serve on a free port; return it once the server accepts connections."""
        # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (tests/conftest.py).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            self._routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            ready.set()

        def run() -> None:
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=self._name)
        self._thread.start()
        ready.wait(10)
        return int(sock.getsockname()[1])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
