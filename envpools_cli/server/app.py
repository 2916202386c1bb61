"""The local backend's FastAPI application and its lifetime (scheduler start/stop)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.warnings import UnsupportedFieldAttributeWarning

from envpools_cli import __version__, models
from envpools_cli.server.api.routes import account_router, pools_router
from envpools_cli.server.context import ServerContext
from envpools_cli.server.errors import RequestIdMiddleware, install_error_handlers, resources
from envpools_cli.server.scheduling.scheduler import Scheduler
from envpools_cli.server.services.rollouts import Service
from envpools_cli.server.settings import ServerSettings

__all__ = ["LocalBackend", "create_app"]

PREFIXES = ("/v1", "/api/v1", "/api/v1/environment-pools")

# models.py defers building each model's validator to its first use (the CLI's start-up
# need not pay for 40 models), so FastAPI's adapter for a request body is completed at a
# route's first request, when pydantic warns that the alias FastAPI gives the body (its
# parameter's own name) has no effect there. It has none: the body is the whole request.
warnings.filterwarnings(
    "ignore",
    message="The 'alias' attribute with value 'body' was provided",
    category=UnsupportedFieldAttributeWarning,
)


def model_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, BaseModel):
            schemas[name] = value.model_json_schema()
    return {"version": __version__, "schemas": schemas}


class LocalBackend:
    """One backend instance: context, scheduler and the app serving them."""

    def __init__(self, settings: ServerSettings | None = None, *, start_scheduler: bool = True):
        self.settings = settings or ServerSettings.from_env()
        self.ctx = ServerContext.create(self.settings)
        self.scheduler = Scheduler(self.ctx)
        self.service = Service(self.ctx, self.scheduler)
        self.start_scheduler = start_scheduler
        self.app = create_app(self)

    def start(self) -> None:
        if self.start_scheduler:
            self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.ctx.store.close()


def create_app(backend: LocalBackend) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend.start()
        try:
            yield
        finally:
            backend.stop()

    app = FastAPI(
        title="Environment Pools (envpools local backend)",
        version=__version__,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = backend.service
    app.state.model_schemas = model_schemas()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    for index, prefix in enumerate(PREFIXES):
        app.include_router(pools_router, prefix=prefix, include_in_schema=index == 0)
    app.include_router(account_router)
    app.state.resources = resources(
        [(prefix + path, methods) for prefix in PREFIXES for path, methods in _paths(pools_router)]
        + _paths(account_router)
    )
    return app


def _paths(router: APIRouter) -> list[tuple[str, set[str]]]:
    return [(r.path, r.methods or set()) for r in router.routes if isinstance(r, APIRoute)]
