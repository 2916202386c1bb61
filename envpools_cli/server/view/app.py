"""The viewer's routes, mounted at ``/view``.

- ``/`` the page and ``/static/*`` its bundled script and stylesheet (nothing is loaded
  from anywhere else; the Content-Security-Policy forbids it);
- ``POST /session`` signs a browser in (a one-time code, or an API key on the backend);
- ``/api/v1/<path>`` the API, GET only and only what the viewer shows (rollouts, their
  events, artifacts and usage, pools), called with the session's key; event streams
  pass through as they come;
- ``/api/jobs``, ``/api/jobs/<id>`` and ``/api/jobs/<id>/events`` (server-sent events,
  a new document whenever the job changes), from the ``JobsSource``.

Artifacts are the agent's files, hence hostile: they are served with a sandboxing
Content-Security-Policy and ``nosniff``, so an HTML or SVG artifact opened in the browser
runs nothing in the viewer's origin; the page itself shows them as text only.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from envpools_cli import __version__
from envpools_cli.server.view.jobs import JobsSource
from envpools_cli.server.view.sessions import COOKIE, SESSION_IDLE_SEC, Sessions

__all__ = ["PAGE_CSP", "ViewConfig", "create_view_app", "standalone_app"]

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ARTIFACT_CSP = "sandbox; default-src 'none'"
_ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "icon.svg": "image/svg+xml"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}"
_PROXIED = re.compile(
    rf"^(rollouts|rollouts/{_ID}(/(summary|usage|events|artifacts(/.+)?))?"
    rf"|pools|pools/{_ID}(/metrics)?|queue/status|capabilities)$"
)
_JOB_POLL_SEC = 1.0
_HEARTBEAT_SEC = 15.0


@dataclass
class ViewConfig:
    sessions: Sessions
    upstream: Callable[[Request, str], str]
    """The API URL of a suffix (``rollouts/ro_1/events``), for this request."""
    backend: str
    """What the page says it shows (the backend's URL, no key)."""
    jobs: JobsSource | None = None
    loopback_only: bool = True
    """Refuse requests whose Host is not a loopback name (a DNS-rebinding page)."""
    secure_cookie: bool = False


def _asset(name: str) -> bytes:
    return (resources.files("envpools_cli.server.view") / "assets" / name).read_bytes()


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=_SECURITY)


def create_view_app(config: ViewConfig) -> Starlette:
    client: dict[str, httpx.AsyncClient] = {}

    def http() -> httpx.AsyncClient:
        # One client per running loop (a test may run several servers, each its own loop).
        if "client" not in client:
            timeout = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)
            client["client"] = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        return client["client"]

    def host_ok(request: Request) -> bool:
        if not config.loopback_only:
            return True
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name in _LOOPBACK

    def session_key(request: Request) -> str | None:
        return config.sessions.key_of(request.cookies.get(COOKIE))

    def guarded(
        handler: Callable[[Request, str], Any],
    ) -> Callable[[Request], Any]:
        async def route(request: Request) -> Response:
            if not host_ok(request):
                return _error(403, "forbidden", "the viewer answers on loopback names only")
            key = session_key(request)
            if key is None:
                return _error(
                    401,
                    "unauthorized",
                    "not signed in: open the link 'envpools view' printed"
                    + (", or sign in with an API key" if config.sessions.accepts_keys else ""),
                )
            response: Response = await handler(request, key)
            return response

        return route

    async def page(request: Request) -> Response:
        if not host_ok(request):
            return _error(403, "forbidden", "the viewer answers on loopback names only")
        return Response(
            _asset("index.html"),
            media_type="text/html; charset=utf-8",
            headers={**_SECURITY, "Content-Security-Policy": PAGE_CSP},
        )

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:
            return _error(404, "not_found", f"no asset {name!r}")
        return Response(
            _asset(name),
            media_type=_ASSETS[name],
            headers={**_SECURITY, "Cache-Control": "no-cache"},
        )

    async def session(request: Request) -> Response:
        if not host_ok(request):
            return _error(403, "forbidden", "the viewer answers on loopback names only")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(422, "validation_error", 'send {"code": ...} or {"api_key": ...}')
        if isinstance(body.get("code"), str):
            token = config.sessions.redeem(body["code"])
        elif isinstance(body.get("api_key"), str):
            token = await anyio.to_thread.run_sync(config.sessions.sign_in, body["api_key"])
        else:
            token = None
        if token is None:
            return _error(
                401,
                "unauthorized",
                "that code is spent, expired or unknown: run 'envpools view' again"
                if "code" in body
                else "that API key is not valid here",
            )
        response = Response(status_code=204, headers=_SECURITY)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(SESSION_IDLE_SEC),
            path="/view",
            httponly=True,
            samesite="strict",
            secure=config.secure_cookie,
        )
        return response

    async def logout(request: Request) -> Response:
        config.sessions.end(request.cookies.get(COOKIE))
        response = Response(status_code=204, headers=_SECURITY)
        response.delete_cookie(COOKIE, path="/view")
        return response

    async def info(request: Request, key: str) -> Response:
        return JSONResponse(
            {
                "backend": config.backend,
                "version": __version__,
                "jobs": config.jobs is not None,
            },
            headers=_SECURITY,
        )

    async def proxy(request: Request, key: str) -> Response:
        path = request.path_params["path"]
        if not _PROXIED.match(path) or "/../" in f"/{path}/" or "\\" in path:
            return _error(404, "not_found", f"the viewer does not show {path!r}")
        # The path arrives decoded: encode it again, so that a %3F stays part of a name.
        url = config.upstream(request, quote(path, safe="/:@!$&'()*+,;=-._~"))
        if request.url.query:
            url += "?" + request.url.query
        headers = {
            "Authorization": f"Bearer {key}",
            "Accept": request.headers.get("accept", "*/*"),
            "Accept-Encoding": "identity",
        }
        if last := request.headers.get("last-event-id"):
            headers["Last-Event-ID"] = last
        try:
            upstream = await http().send(
                http().build_request("GET", url, headers=headers), stream=True
            )
        except httpx.HTTPError as exc:
            return _error(502, "backend_unreachable", f"the backend did not answer: {exc}")
        out = dict(_SECURITY)
        for name in ("content-type", "content-length", "etag", "retry-after"):
            if name in upstream.headers:
                out[name] = upstream.headers[name]
        if path.startswith("rollouts/") and "/artifacts/" in path:
            out["Content-Security-Policy"] = ARTIFACT_CSP
            if request.query_params.get("download"):
                name = path.rsplit("/", 1)[-1].replace('"', "")
                out["Content-Disposition"] = f'attachment; filename="{name}"'
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            out["X-Accel-Buffering"] = "no"

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.HTTPError:
                return
            finally:
                await upstream.aclose()

        return StreamingResponse(body(), status_code=upstream.status_code, headers=out)

    async def jobs(request: Request, key: str) -> Response:
        if config.jobs is None:
            return JSONResponse([], headers=_SECURITY)
        listed = await anyio.to_thread.run_sync(config.jobs.list_jobs)
        return JSONResponse(listed, headers=_SECURITY)

    async def job(request: Request, key: str) -> Response:
        found = None
        if config.jobs is not None:
            found = await anyio.to_thread.run_sync(config.jobs.job, request.path_params["job_id"])
        if found is None:
            return _error(404, "not_found", f"no job {request.path_params['job_id']!r}")
        return JSONResponse(found, headers=_SECURITY)

    async def job_events(request: Request, key: str) -> Response:
        """The job's document again whenever it changes: its live progress."""
        job_id = request.path_params["job_id"]
        source = config.jobs
        if source is None or await anyio.to_thread.run_sync(source.job, job_id) is None:
            return _error(404, "not_found", f"no job {job_id!r}")

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n\n"
            last, quiet = "", 0.0
            while True:
                found = await anyio.to_thread.run_sync(source.job, job_id)
                text = json.dumps(found, separators=(",", ":"), default=str)
                if text != last:
                    last, quiet = text, 0.0
                    yield f"event: job\ndata: {text}\n\n".encode()
                elif quiet >= _HEARTBEAT_SEC:
                    quiet = 0.0
                    yield b": heartbeat\n\n"
                await anyio.sleep(_JOB_POLL_SEC)
                quiet += _JOB_POLL_SEC

        headers = {**_SECURITY, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/static/{name}", static),
            Route("/session", session, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/api/info", guarded(info)),
            Route("/api/jobs", guarded(jobs)),
            Route("/api/jobs/{job_id}", guarded(job)),
            Route("/api/jobs/{job_id}/events", guarded(job_events)),
            Route("/api/v1/{path:path}", guarded(proxy)),
        ]
    )


def standalone_app(config: ViewConfig) -> Starlette:
    """The viewer on its own (``envpools view``): at ``/view``, with ``/`` leading there."""

    async def root(request: Request) -> Response:
        return RedirectResponse("/view/", headers=_SECURITY)

    return Starlette(routes=[Route("/", root), Mount("/view", create_view_app(config))])
