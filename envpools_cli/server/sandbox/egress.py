"""The egress gateway: the only way out of an agent's sandbox, to its LLM provider only.

Agent sandboxes have a network namespace of their own (loopback only): they cannot reach
the backend's API, another service on the host's loopback, or the internet. For each
rollout whose agent needs a model, the backend opens a gateway: a reverse proxy that
forwards ``/<provider>/<path>`` to that provider's base URL (the default public API, or
the ``<PROVIDER>_BASE_URL`` credential: a gateway, a proxy, a self-hosted server) and
nothing else.

The agent never holds the provider key. It gets a per-rollout placeholder as its key;
the gateway swaps the placeholder for the stored key on the way out, so the real key is
not in the sandbox's environment, files, process list or artifacts. A request without
the placeholder is refused, so another local user who finds the socket gains nothing.
Each call it forwards can be recorded (``exchanges.py``: scrubbed, streams reassembled).

With bubblewrap the gateway listens on a unix socket bound into the sandbox, and a tiny
forwarder started in front of the agent (``FORWARDER``) listens on the sandbox's own
``127.0.0.1:GATEWAY_PORT`` and relays each connection to that socket. With the plain-
process driver (no isolation at all) the gateway listens on a loopback TCP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from envpools_cli.server.sandbox.drivers import Mount
from envpools_cli.server.sandbox.exchanges import ExchangeLog

__all__ = [
    "GATEWAY_PORT",
    "PROVIDERS",
    "EgressGateway",
    "Provider",
    "Route",
    "open_gateway",
]

log = logging.getLogger("envpools.server.egress")

GATEWAY_PORT = 41547
"""Where the gateway answers inside a sandbox: its own loopback, so any fixed port works."""

SOCKET_NAME = "gateway.sock"
SANDBOX_SOCKET_DIR = "/run/envpools-egress"
_MAX_BODY = 64 * 1024 * 1024
_HOP_HEADERS = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
    b"content-length",
}
_KEY_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Provider:
    """An LLM provider: which credentials hold its key and its base URL, and the default."""

    name: str
    key_names: tuple[str, ...]
    base_url_name: str
    default_base_url: str | None
    strip_v1: bool = False
    """Anthropic's convention: the base URL has no ``/v1`` (clients add it)."""

    def upstream(self, stored: str | None) -> str | None:
        url = (stored or self.default_base_url or "").strip().rstrip("/")
        if self.strip_v1 and url.endswith("/v1"):
            url = url[: -len("/v1")]
        return url or None


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "openai",
            ("OPENAI_API_KEY", "CODEX_API_KEY"),
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
        ),
        Provider(
            "anthropic",
            ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
            strip_v1=True,
        ),
        Provider(
            "openrouter",
            ("OPENROUTER_API_KEY",),
            "OPENROUTER_BASE_URL",
            "https://openrouter.ai/api/v1",
        ),
        # Gemini's clients add /v1beta/models/... themselves; the key goes in x-goog-api-key.
        Provider(
            "gemini",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            "GEMINI_BASE_URL",
            "https://generativelanguage.googleapis.com",
        ),
        # Alibaba Cloud Model Studio (Qwen models), OpenAI-compatible.
        Provider(
            "dashscope",
            ("DASHSCOPE_API_KEY",),
            "DASHSCOPE_BASE_URL",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        ),
    )
}


def provider(name: str) -> Provider:
    """A known provider, or ``<NAME>_API_KEY`` / ``<NAME>_BASE_URL`` for any other id."""
    if name in PROVIDERS:
        return PROVIDERS[name]
    env = "".join(c if c.isalnum() else "_" for c in name).upper()
    return Provider(name, (f"{env}_API_KEY",), f"{env}_BASE_URL", None)


@dataclass(frozen=True)
class Route:
    """``/<name>/...`` inside the sandbox goes to ``upstream/...`` with ``key``."""

    name: str
    upstream: str
    key: str

    def __repr__(self) -> str:  # never print the key
        return f"Route({self.name!r}, {self.upstream!r})"


@dataclass
class GatewayLog:
    """What went through a gateway, for the rollout's events and error messages."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "upstream_failures": self.failures[-3:],
        }


class _Proxy:
    """The ASGI app: one route table, one placeholder, one upstream client."""

    def __init__(
        self, routes: dict[str, Route], placeholder: str, record: GatewayLog, exchanges: ExchangeLog
    ) -> None:
        self.routes = routes
        self.placeholder = placeholder.encode()
        self.record = record
        self.exchanges = exchanges
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                timeout = httpx.Timeout(connect=20.0, read=900.0, write=60.0, pool=20.0)
                self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _reply(send: Send, status: int, message: str) -> None:
        body = json.dumps({"error": {"type": "envpools_gateway", "message": message}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.record.requests += 1
        name, _, rest = str(scope["path"]).lstrip("/").partition("/")
        route = self.routes.get(name)
        if route is None:
            await self._reply(
                send,
                404,
                f"envpools gateway: no provider {name!r} for this rollout; "
                f"it forwards to {sorted(self.routes)}",
            )
            return
        headers: list[tuple[bytes, bytes]] = []
        authorised = False
        key = route.key.encode()
        for raw_name, value in scope["headers"]:
            lower = raw_name.lower()
            if lower in _HOP_HEADERS:
                continue
            if self.placeholder in value:
                authorised = authorised or lower in _KEY_HEADERS
                value = value.replace(self.placeholder, key)
            headers.append((raw_name, value))
        if not authorised:
            self.record.refused.append(f"{scope['method']} /{name}/{rest}")
            await self._reply(send, 401, "envpools gateway: this request carries no rollout key")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > _MAX_BODY:
                await self._reply(send, 413, "envpools gateway: request body too large")
                return
            if not message.get("more_body"):
                break
        url = f"{route.upstream}/{rest}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        assert self.client is not None
        exchange = self.exchanges.begin(name, scope["method"], rest, bytes(body))
        try:
            request = self.client.build_request(
                scope["method"], url, headers=headers, content=bytes(body)
            )
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            reason = _describe(exc)
            where = _origin(route.upstream)
            exchange.end(reason)
            self.record.failures.append(f"{where}: {reason}")
            await self._reply(send, 502, f"envpools gateway: cannot reach {where}: {reason}")
            return
        self.record.statuses[response.status_code] = (
            self.record.statuses.get(response.status_code, 0) + 1
        )
        try:
            out = [
                (k, v.replace(key, self.placeholder))
                for k, v in response.headers.raw
                if k.lower() not in _HOP_HEADERS
            ]
            start = {"type": "http.response.start", "status": response.status_code}
            exchange.response(response.status_code, response.headers.raw)
            await send({**start, "headers": out})
            async for chunk in response.aiter_raw():
                exchange.chunk(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError as exc:
            exchange.end(_describe(exc))
            self.record.failures.append(f"{_origin(route.upstream)}: {_describe(exc)}")
        finally:
            exchange.end()
            await response.aclose()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _describe(exc: httpx.HTTPError) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or (str(cause) if cause else "") or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed ({text})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return text


class EgressGateway:
    """One rollout's gateway: a proxy server on its own thread and event loop."""

    def __init__(
        self, routes: list[Route], *, isolated: bool, exchanges: ExchangeLog | None = None
    ) -> None:
        self.routes = {r.name: r for r in routes}
        self.placeholder = "sk-envpools-" + secrets.token_urlsafe(24)
        self.log = GatewayLog()
        self.isolated = isolated
        self._dir: Path | None = None
        if isolated:
            # A short path of its own: unix socket paths are limited to 107 bytes.
            self._dir = Path(tempfile.mkdtemp(prefix="envpools-gw-"))
            path = self._dir / SOCKET_NAME
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.bind(str(path))
            # The sandbox user connects through a read-only bind of this folder.
            path.chmod(0o666)
            self._dir.chmod(0o711)
            self.url = f"http://127.0.0.1:{GATEWAY_PORT}"
        else:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._sock.listen(128)
        config = uvicorn.Config(
            _Proxy(self.routes, self.placeholder, self.log, exchanges or ExchangeLog(None)),
            lifespan="on",
            log_level="warning",
            access_log=False,
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="envpools-egress", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self, timeout: float = 30.0) -> EgressGateway:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the egress gateway did not start")
            time.sleep(0.005)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EgressGateway:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def url_for(self, route: str) -> str:
        """The base URL an agent uses for ``route`` (the provider's own base URL)."""
        return f"{self.url}/{route}"

    @property
    def socket_path(self) -> Path | None:
        """The unix socket the gateway listens on (None on the loopback-TCP variant)."""
        return None if self._dir is None else self._dir / SOCKET_NAME

    def sandbox_mounts(self) -> list[Mount]:
        """What the sandbox binds to reach this gateway (nothing when not isolated)."""
        if self._dir is None:
            return []
        _, extra = forwarder_python()
        return [Mount(self._dir, SANDBOX_SOCKET_DIR), *extra]

    def launcher(self) -> list[str]:
        """The forwarder to run in front of the agent's command (none when not isolated)."""
        if self._dir is None:
            return []
        python, _ = forwarder_python()
        target = f"{SANDBOX_SOCKET_DIR}/{SOCKET_NAME}"
        return [python, "-I", "-S", "-c", FORWARDER, str(GATEWAY_PORT), target]


def open_gateway(
    routes: list[Route], *, isolated: bool, exchanges: ExchangeLog | None = None
) -> EgressGateway:
    """A started gateway; ``exchanges`` records each call it forwards (see exchanges.py)."""
    return EgressGateway(routes, isolated=isolated, exchanges=exchanges).start()


def forwarder_python() -> tuple[str, list[Mount]]:
    """A Python interpreter the sandbox can run, and what to bind for it."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.access(real, os.X_OK):
            return candidate, []
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    prefix = os.path.realpath(sys.base_prefix)
    return base, [Mount(Path(prefix), prefix)]


FORWARDER = r"""
import os, socket, sys, threading

port, target, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(128)
if os.fork():
    listener.close()
    os.execvp(command[0], command)

null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)

def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

def relay(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(target)
    except OSError:
        client.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()

while True:
    client, _ = listener.accept()
    threading.Thread(target=relay, args=(client,), daemon=True).start()
"""
"""Runs in the sandbox: listen on its loopback, start the agent, relay to the socket."""
