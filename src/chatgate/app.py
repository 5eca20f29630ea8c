"""The ASGI application: ``create_app(settings)``.

The lifespan opens the store (bringing its schema up to date), starts the log writer and opens the
one pooled upstream HTTP session; on shutdown it drains the writer before closing the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from chatgate import __version__
from chatgate.api import errors
from chatgate.api.body import add_body_schemas
from chatgate.api.errors import json_response
from chatgate.api.middleware import RequestMiddleware
from chatgate.api.routes import chat, logs
from chatgate.api.routes import chat_variants as chat_variant_routes
from chatgate.api.routes import feedback as feedback_routes
from chatgate.api.routes import model_configs as model_config_routes
from chatgate.api.routes import not_implemented as not_implemented_routes
from chatgate.api.routes import projects as project_routes
from chatgate.api.routes import sessions as sessions_routes
from chatgate.api.schemas import model_configs as model_config_schemas
from chatgate.api.schemas import projects as project_schemas
from chatgate.api.schemas.chat import ChatRequest
from chatgate.providers import build_registry
from chatgate.providers._http import (
    RetryPolicy,
    configure_retries,
    configure_timeouts,
    create_session,
)
from chatgate.providers.prices import PriceTable
from chatgate.services.auth import Authenticator
from chatgate.services.chat import ChatService
from chatgate.services.credentials import CredentialResolver, fernet_for, load_or_create_secret
from chatgate.services.log_limit import LogLimit
from chatgate.services.resolve import Resolver
from chatgate.settings import Settings
from chatgate.state import AppState
from chatgate.store.journal import Journal
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter
from chatgate.templating import TemplateLimits, TemplateRenderer

_LAST_USED_FLUSH_SECONDS = 30.0

log = logging.getLogger("chatgate")


async def _flush_last_used(auth: Authenticator, store: Store) -> None:
    while True:
        await asyncio.sleep(_LAST_USED_FLUSH_SECONDS)
        with contextlib.suppress(Exception):
            await store.call(auth.flush_last_used)


def tune_gc() -> None:
    """Fewer, cheaper garbage collections on the request path.

    Everything alive after start-up (modules, the app, pydantic schemas) is moved out of the
    collector's sight, and the young generation is collected less often: a request allocates
    thousands of short-lived objects that reference counting frees anyway. Measured in bench/.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


class ChatgateApp(FastAPI):
    """FastAPI with chatgate's request-level middleware outside everything else (outside even
    Starlette's last-resort error handler, which ``add_middleware`` cannot reach)."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestMiddleware(super().build_middleware_stack())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Loaded when the app is built, not in the lifespan: a bad price file then stops
    # create_app with its own message instead of failing uvicorn's start-up.
    prices = PriceTable(settings.prices_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opened here, on the serving event loop (each worker process has its own): asyncpg's
        # connections belong to the loop that opened them.
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
        # The project routes clear it when a project is deleted or renamed.
        app.state.resolver = resolver = Resolver(
            store, project_cache_seconds=settings.project_cache_seconds
        )
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
            templates=templates,
            log_limit=LogLimit(settings.resolved_max_log_bytes),
        )
        app.state.chatgate = AppState(settings, store, writer, http, auth, service)
        flusher = asyncio.create_task(_flush_last_used(auth, store))
        tune_gc()
        try:
            yield
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

    app = ChatgateApp(
        title="chatgate",
        version=__version__,
        description="A self-hosted server for Humanloop's v4 REST API.",
        lifespan=lifespan,
        openapi_url="/v4/openapi.json",
        docs_url="/v4/docs",
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(chat.router, prefix="/v4")
    app.include_router(logs.router, prefix="/v4")
    app.include_router(feedback_routes.router, prefix="/v4")
    app.include_router(sessions_routes.router, prefix="/v4")
    app.include_router(chat_variant_routes.router, prefix="/v4")
    app.include_router(model_config_routes.router, prefix="/v4")
    app.include_router(project_routes.router, prefix="/v4")
    app.include_router(not_implemented_routes.router, prefix="/v4")
    add_body_schemas(
        app,
        [
            ChatRequest,
            *feedback_routes.BODY_MODELS,
            model_config_schemas.ChatModelConfigRequest,
            model_config_schemas.ChatDeployedRequest,
            model_config_schemas.ProjectModelConfigRequest,
            model_config_schemas.Body_ModelConfigs_deserialize,
            project_schemas.CreateProjectRequest,
            project_schemas.UpdateProjectRequest,
            project_schemas.EnvironmentProjectConfigRequest,
        ],
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> Response:
        """200 when logs reach the database; 503 while they wait in the local journal."""
        writer: LogWriter = request.app.state.chatgate.writer
        pending = await asyncio.to_thread(writer.journal_pending)
        degraded = writer.outage or pending > 0
        body = {
            "status": "degraded" if degraded else "ok",
            "version": __version__,
            "database": "unreachable" if writer.outage else "ok",
            "journal_pending": pending,
        }
        return json_response(body, 503 if degraded else 200)

    return app
