"""The local backend's FastAPI application and its lifetime (scheduler start/stop)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.warnings import UnsupportedFieldAttributeWarning
from starlette.requests import Request

from envpools_cli import __version__, models
from envpools_cli.server.agents import HARNESSES, harness_classes
from envpools_cli.server.api.bodies import BodyLimitMiddleware
from envpools_cli.server.api.routes import account_router, pools_router
from envpools_cli.server.api.text import RefuseUnencodableText
from envpools_cli.server.context import ServerContext
from envpools_cli.server.errors import (
    EncodedJSONResponse,
    RequestIdMiddleware,
    install_error_handlers,
    resources,
)
from envpools_cli.server.scheduling.executor import Executor
from envpools_cli.server.scheduling.scheduler import Scheduler
from envpools_cli.server.services.rollouts import Service
from envpools_cli.server.services.schemas import with_custom_agents
from envpools_cli.server.settings import ServerSettings, SettingError
from envpools_cli.server.view import Sessions, ViewConfig, create_view_app

__all__ = ["LocalBackend", "create_app"]

log = logging.getLogger("envpools.server")

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
        self.settings.check()
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
        if lost := self.ctx.ends.flush():
            log.error(
                "the store did not take the end of %d rollout(s) before the backend stopped "
                "(%s); they will show error/backend_restarted at the next start",
                len(lost),
                ", ".join(lost[:10]),
            )
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
        default_response_class=EncodedJSONResponse,
    )
    app.state.service = backend.service
    app.state.data_dir = backend.settings.data_dir
    app.state.model_schemas = model_schemas()
    install_error_handlers(app)
    # The last added is the outermost: every answer has an id, the key is checked and the
    # size capped before any body is read, and only then is a body looked into for text.
    app.add_middleware(RefuseUnencodableText)
    app.add_middleware(BodyLimitMiddleware, max_bytes=backend.settings.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    for index, prefix in enumerate(PREFIXES):
        app.include_router(pools_router, prefix=prefix, include_in_schema=index == 0)
    app.include_router(account_router)
    cached_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        custom = {
            name: cls
            for name, cls in harness_classes(backend.ctx.agents.agents_dir).items()
            if name not in HARNESSES
        }
        return with_custom_agents(cached_openapi(), custom)

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.resources = resources(
        [(prefix + path, methods) for prefix in PREFIXES for path, methods in _paths(pools_router)]
        + _paths(account_router)
    )
    app.mount("/view", create_view_app(_view_config(backend)))
    return app


def _own_api(request: Request, suffix: str) -> str:
    """This backend's API, on the address the request came in on (never its Host header)."""
    host, port = request.scope.get("server") or ("127.0.0.1", 8000)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1/{suffix}"


def _view_config(backend: LocalBackend) -> ViewConfig:
    """The viewer at ``/view``: a person signs in with an API key of this backend."""

    def check_key(key: str) -> bool:
        org = backend.ctx.store.org_for_key(key)
        return org is not None and org.has_access

    return ViewConfig(
        sessions=Sessions(check_key=check_key),
        upstream=_own_api,
        backend="this local backend",
        jobs=None,
        # Reachable only with a key (posted, never in a URL), whatever address it is on.
        loopback_only=False,
    )


def _paths(router: APIRouter) -> list[tuple[str, set[str]]]:
    return [(r.path, r.methods or set()) for r in router.routes if isinstance(r, APIRoute)]
