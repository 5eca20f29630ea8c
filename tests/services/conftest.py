"""The services, tested directly: every service built by ``open_state`` (the server's own
composition) on a real SQLite file (PostgreSQL in the CI's second pass), with a scripted
in-process wire instead of a provider. No HTTP server, no uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from chatgate.domain import ChatCall, Usage
from chatgate.providers import WIRES
from chatgate.providers.base import ProviderSpec, Upstream
from chatgate.services.auth import Principal
from chatgate.settings import Settings
from chatgate.state import AppState, open_state
from chatgate.store.sql import Store
from chatgate.streaming import Finish, StreamEvent, TextDelta, UsageReport
from tests.conftest import backend_url

_T = TypeVar("_T")

STUB = ProviderSpec("stub", wire="stub", origin="Stub", requires_key=False)


@dataclass
class Stall:
    """A script item: the wire waits here (as a provider that stopped sending would) until the
    call is cancelled or closed; ``reached`` is set when it gets here."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)


ScriptItem = StreamEvent | Exception | Stall


def _hello(call: ChatCall) -> list[ScriptItem]:
    return [
        TextDelta(0, "hello"),
        UsageReport(Usage(prompt_tokens=3, generation_tokens=1), 0),
        Finish(0, "stop"),
    ]


@dataclass
class StubWire:
    """A wire whose events are scripted per test; it records every call it was given, and
    counts the calls whose event stream was closed (ended, failed or abandoned)."""

    script: Callable[[ChatCall], list[ScriptItem]] = _hello
    calls: list[ChatCall] = field(default_factory=list)
    closed: int = 0

    def prepare(self, call: ChatCall, spec: ProviderSpec) -> Upstream:
        return Upstream("stub://", {"model": call.config.model}, {})

    async def events(
        self, http: aiohttp.ClientSession, upstream: Upstream, call: ChatCall, spec: ProviderSpec
    ) -> AsyncGenerator[StreamEvent, None]:
        self.calls.append(call)
        try:
            for item in self.script(call):
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, Stall):
                    item.reached.set()
                    await asyncio.Event().wait()  # until cancelled
                    continue
                yield item
        finally:
            self.closed += 1


@dataclass
class Services:
    """Runs a test's coroutine with every service open on one SQLite file."""

    settings: Settings
    wire: StubWire
    acme: Principal
    globex: Principal

    def run(self, work: Callable[[AppState], Awaitable[_T]]) -> _T:
        async def main() -> _T:
            async with self.open() as state:
                return await work(state)

        return asyncio.run(main())

    def open(self) -> AbstractAsyncContextManager[AppState]:
        return open_state(
            self.settings, registry={"stub": STUB}, wires={**WIRES, "stub": self.wire}
        )

    def store(self) -> Store:
        """A second, synchronous handle on the same file, for checking what was stored."""
        return Store(self.settings.resolved_database_url)


@pytest.fixture
def services(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Services]:
    """On a SQLite file; on a new PostgreSQL database when CHATGATE_TEST_BACKEND=postgres."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=backend_url(request) or f"sqlite:///{tmp_path / 'data' / 'chatgate.db'}",
        vendor_env={},
    )
    (tmp_path / "data").mkdir()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    acme = Principal(store.orgs.get_or_create_org("acme"), "acme", "key_acme")
    globex = Principal(store.orgs.get_or_create_org("globex"), "globex", "key_globex")
    store.close()
    yield Services(settings, StubWire(), acme, globex)
