"""The ASGI application: ``create_app(settings)``.

The lifespan opens the store (bringing its schema up to date), starts the log writer and opens the
one pooled upstream HTTP session; on shutdown it drains the writer before closing the store.
"""

from __future__ import annotations

import gc
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
from chatgate.providers.prices import PriceTable
from chatgate.settings import Settings
from chatgate.state import AppState, open_state


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
        async with open_state(settings, prices) as state:
            app.state.chatgate = state
            tune_gc()
            yield

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
        state: AppState = request.app.state.chatgate
        health = await state.health.check()
        body = {
            "status": "degraded" if health.degraded else "ok",
            "version": __version__,
            "database": "ok" if health.database_reachable else "unreachable",
            "journal_pending": health.journal_pending,
        }
        return json_response(body, 503 if health.degraded else 200)

    return app
