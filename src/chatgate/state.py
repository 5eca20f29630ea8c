"""What one server process holds for its lifetime (built in app.py's lifespan).

The doors (routes, pages) reach chatgate through these services only: the store, the log writer
and the upstream HTTP session are held by the services, never handed to a door.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from chatgate.providers import WIRES, build_registry
from chatgate.providers._http import (
    RetryPolicy,
    configure_retries,
    configure_timeouts,
    create_session,
)
from chatgate.providers.base import ProviderSpec, Wire
from chatgate.providers.prices import PriceTable
from chatgate.services.auth import Authenticator
from chatgate.services.chat import ChatService
from chatgate.services.configs import ConfigService
from chatgate.services.credentials import CredentialResolver, fernet_for, load_or_create_secret
from chatgate.services.feedback import FeedbackService
from chatgate.services.health import HealthService
from chatgate.services.log_limit import LogLimit
from chatgate.services.logs import LogService
from chatgate.services.projects import ProjectService
from chatgate.services.resolve import Resolver
from chatgate.services.sessions import SessionService
from chatgate.settings import Settings
from chatgate.store.journal import Journal
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter
from chatgate.templating import TemplateLimits, TemplateRenderer


@dataclass(slots=True)
class AppState:
    settings: Settings
    auth: Authenticator
    #: The one resolver (and its caches) of this process: chat, logs, configs and projects share it.
    resolver: Resolver
    chat: ChatService
    logs: LogService
    feedback: FeedbackService
    sessions: SessionService
    projects: ProjectService
    configs: ConfigService
    health: HealthService


_LAST_USED_FLUSH_SECONDS = 30.0

log = logging.getLogger("chatgate")


async def _flush_last_used(auth: Authenticator, store: Store) -> None:
    while True:
        await asyncio.sleep(_LAST_USED_FLUSH_SECONDS)
        with contextlib.suppress(Exception):
            await store.call(auth.flush_last_used)


@asynccontextmanager
async def open_state(
    settings: Settings,
    prices: PriceTable | None = None,
    *,
    registry: Mapping[str, ProviderSpec] | None = None,
    wires: Mapping[str, Wire] = WIRES,
) -> AsyncIterator[AppState]:
    """Open the store (bringing its schema up to date), start the log writer, open the pooled
    upstream HTTP session and build every service on them; on exit drain the writer, then close
    the store. The server's lifespan uses it; ``tests/services`` use it with a stub wire.

    Entered on the serving event loop (each worker process has its own): asyncpg's connections
    belong to the loop that opened them.
    """
    prices = prices or PriceTable(settings.prices_file)
    store = Store(
        settings.resolved_database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        background_checkpoint=True,
        driver="async",
    )
    await store.call(store.upgrade)
    writer = LogWriter(
        store, queue_size=settings.writer_queue_size, journal=Journal(settings.data_dir)
    )
    writer.start()
    if registry is None:
        registry = build_registry(
            settings.providers, settings.vendor_env, settings.allowed_upstream_hosts
        )
    configure_timeouts(
        {
            spec.origin: settings.provider_timeouts[name]
            for name, spec in registry.items()
            if name in settings.provider_timeouts
        }
    )
    configure_retries(
        RetryPolicy(
            max_retries=settings.provider_max_retries,
            max_wait=settings.provider_retry_max_seconds,
        )
    )
    http = create_session(
        total_timeout=settings.provider_timeout_seconds,
        connect_timeout=settings.provider_connect_timeout_seconds,
    )
    auth = Authenticator(store, settings.auth_cache_seconds)
    credentials = CredentialResolver(
        store, fernet_for(load_or_create_secret(settings)), settings.vendor_env
    )
    # The project service clears it when a project is deleted or renamed.
    resolver = Resolver(store, project_cache_seconds=settings.project_cache_seconds)
    # Renderer processes start on first use; the lifespan's end stops them.
    templates = TemplateRenderer(
        TemplateLimits(
            max_chars=settings.max_body_bytes,
            timeout_seconds=settings.template_timeout_seconds,
            memory_bytes=settings.template_memory_bytes,
            workers=settings.template_workers,
        )
    )
    service = ChatService(
        registry=registry,
        resolver=resolver,
        credentials=credentials,
        writer=writer,
        http=http,
        durable=settings.log_commit == "durable",
        prices=prices,
        wires=wires,
        templates=templates,
        log_limit=LogLimit(settings.resolved_max_log_bytes),
    )
    state = AppState(
        settings=settings,
        auth=auth,
        resolver=resolver,
        chat=service,
        logs=LogService(store, writer, resolver),
        feedback=FeedbackService(store),
        sessions=SessionService(store),
        projects=ProjectService(store, resolver),
        configs=ConfigService(store, resolver, service.provider),
        health=HealthService(writer),
    )
    flusher = asyncio.create_task(_flush_last_used(auth, store))
    try:
        yield state
    finally:
        flusher.cancel()
        await templates.aclose()
        await writer.close()
        await http.close()
        # Best effort: with the database unreachable these fail, and the shutdown must still
        # close the store and end cleanly (the logs are safe: committed or journaled).
        for finishing in (auth.flush_last_used, store.checkpoint):
            try:
                await store.call(finishing)
            except Exception as exc:
                log.warning("at shutdown, %s failed: %s", finishing.__name__, exc)
        await store.aclose()
