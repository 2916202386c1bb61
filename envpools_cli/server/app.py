"""The local backend's FastAPI application and its lifetime (scheduler start/stop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from envpools_cli import __version__, models
from envpools_cli.server.api.routes import account_router, pools_router
from envpools_cli.server.context import ServerContext
from envpools_cli.server.errors import RequestIdMiddleware, install_error_handlers, resources
from envpools_cli.server.sandbox.limits import raise_open_files_limit
from envpools_cli.server.scheduling.executor import Executor
from envpools_cli.server.scheduling.scheduler import Scheduler
from envpools_cli.server.services.rollouts import Service
from envpools_cli.server.settings import ServerSettings, SettingError

__all__ = ["LocalBackend", "create_app"]

PREFIXES = ("/v1", "/api/v1", "/api/v1/environment-pools")


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
        self.settings.check()
        raise_open_files_limit()  # what the admission of rollouts counts on (admission.py)
        self.ctx = ServerContext.create(self.settings)
        self.executor = make_executor(self.ctx)
        self.scheduler = Scheduler(self.ctx, self.executor)
        self.service = Service(self.ctx, self.scheduler)
        self.start_scheduler = start_scheduler
        self.app = create_app(self)

    def start(self) -> None:
        if self.start_scheduler:
            self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.ctx.writer.stop()
        self.ctx.store.close()


def make_executor(ctx: ServerContext) -> Executor:
    """Where this backend's trials run (``settings.executor``)."""
    if ctx.settings.executor == "ray":
        try:
            from envpools_cli.server.scheduling.ray import RayExecutor
        except ImportError as exc:
            raise SettingError(
                f"the ray executor needs Ray ({exc}): pip install 'envpools[ray]'"
            ) from None
        try:
            return RayExecutor(ctx)
        except Exception as exc:  # what Ray says when it cannot join the cluster
            raise SettingError(
                f"cannot join the Ray cluster at {ctx.settings.ray_address}: {exc}"
            ) from None
    from envpools_cli.server.scheduling.local import LocalExecutor

    return LocalExecutor(ctx)


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
