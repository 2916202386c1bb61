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

What the gateway rewrites, and nothing else:

- out: the provider's key header (``Provider.key_headers``: ``Authorization`` for OpenAI,
  ``x-api-key`` for Anthropic, ...) when it holds exactly the placeholder (or
  ``Bearer <placeholder>``); the placeholder anywhere else (another header, the query,
  the body) goes out as it is. ``Accept-Encoding`` is ``identity``, so that what comes
  back can be read;
- back: the real key, wherever the provider (or a debugging proxy that echoes requests)
  puts it, becomes the placeholder again: in headers, in the body as it streams (a key
  split across chunks included, ``KeyScrubber``), in error messages.

Request bodies stream through as they arrive, never read whole: at most
``MAX_REQUEST_BYTES`` per request (413 beyond), and the bytes read from agents but not
yet sent on are bounded per rollout (``ROLLOUT_IN_FLIGHT``) and for the whole backend
(``GLOBAL_IN_FLIGHT``): a request waits for room rather than growing the backend.

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
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from envpools_cli.server.sandbox.drivers import Mount
from envpools_cli.server.sandbox.exchanges import Exchange, ExchangeLog
from envpools_cli.server.sandbox.provider_watch import (
    DEFAULT_PROVIDER_TIMEOUT_SEC,
    ProviderWatch,
    RouteNames,
    provider_message,
)

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
MAX_REQUEST_BYTES = 64 * 1024 * 1024
ROLLOUT_IN_FLIGHT = 8 * 1024 * 1024
GLOBAL_IN_FLIGHT = 64 * 1024 * 1024
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
ANY_KEY_HEADER = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
"""Where a provider the gateway does not know may read its key."""
_BEARER = re.compile(rb"(?i)bearer")

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
    key_headers: tuple[str, ...] = ANY_KEY_HEADER
    """The request headers (lower case) the provider reads its key from."""

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
            key_headers=("authorization", "api-key"),  # api-key: Azure OpenAI
        ),
        Provider(
            "anthropic",
            ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
            strip_v1=True,
            key_headers=("x-api-key", "authorization"),  # Bearer: ANTHROPIC_AUTH_TOKEN
        ),
        Provider(
            "openrouter",
            ("OPENROUTER_API_KEY",),
            "OPENROUTER_BASE_URL",
            "https://openrouter.ai/api/v1",
            key_headers=("authorization",),
        ),
        # Gemini's clients add /v1beta/models/... themselves; the key goes in x-goog-api-key.
        Provider(
            "gemini",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            "GEMINI_BASE_URL",
            "https://generativelanguage.googleapis.com",
            key_headers=("x-goog-api-key",),
        ),
        # Alibaba Cloud Model Studio (Qwen models), OpenAI-compatible.
        Provider(
            "dashscope",
            ("DASHSCOPE_API_KEY",),
            "DASHSCOPE_BASE_URL",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            key_headers=("authorization",),
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
    key_headers: tuple[str, ...] = ()
    """Where the key goes (default: the provider's ``key_headers``)."""
    key_name: str = ""
    """The credential the key came from (for "what to do" when the provider refuses it)."""

    def __repr__(self) -> str:  # never print the key
        return f"Route({self.name!r}, {self.upstream!r})"

    @property
    def headers(self) -> frozenset[bytes]:
        return frozenset(h.encode() for h in self.key_headers or provider(self.name).key_headers)


class KeyScrubber:
    """Replaces a secret with its placeholder in a byte stream cut at arbitrary points.

    What could be the start of the secret at the end of a chunk is held back until the
    next chunk says whether it is; everything else goes out at once (a streamed answer
    is not delayed by more than the secret's length, and only when it ends like it).
    """

    def __init__(self, secret: bytes, placeholder: bytes) -> None:
        if not secret:
            raise ValueError("nothing to scrub")
        self.secret = secret
        self.placeholder = placeholder
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = (self._held + chunk).replace(self.secret, self.placeholder)
        keep = 0
        for size in range(min(len(self.secret) - 1, len(data)), 0, -1):
            if data.endswith(self.secret[:size]):
                keep = size
                break
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def text(self, value: str) -> str:
        """A whole string, scrubbed (error messages, header values)."""
        return value.replace(self.secret.decode("latin-1"), self.placeholder.decode("latin-1"))


class ByteBudget:
    """Bytes that may be held at once, shared by event loops on several threads.

    ``acquire`` waits (without blocking its loop) until the bytes fit; a request larger
    than the whole budget takes all of it. Every release wakes the waiters to try again.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        size = min(size, self.limit)
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self.used + size <= self.limit:
                    self.used += size
                    return size
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, waiter))
            try:
                await waiter
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    self._waiters.remove((loop, waiter))

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size
            waiters = list(self._waiters)
            self._waiters.clear()
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_wake, waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


GLOBAL_BUDGET = ByteBudget(GLOBAL_IN_FLIGHT)
"""Request bytes held by every gateway of this backend together."""


class _TooLarge(Exception):
    pass


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGone(Exception):
    pass


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


_ERROR_BODY_KEPT = 4096
"""Of an error answer, what is read for the provider's message."""


class _Proxy:
    """The ASGI app: one route table, one placeholder, one upstream client.

    What the provider does with each call goes to ``watch`` (``provider_watch.py``),
    which tells when the provider has failed the rollout.
    """

    def __init__(
        self,
        routes: dict[str, Route],
        placeholder: str,
        record: GatewayLog,
        exchanges: ExchangeLog,
        watch: ProviderWatch,
    ) -> None:
        self.routes = routes
        self.placeholder = placeholder.encode()
        self.record = record
        self.exchanges = exchanges
        self.watch = watch
        self.client: httpx.AsyncClient | None = None
        self.budget = ByteBudget(ROLLOUT_IN_FLIGHT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # No response headers, or a stream silent, for the provider timeout: the
                # call fails (and the watch ends the rollout: provider_timeout).
                wait = self.watch.timeout_sec
                timeout = httpx.Timeout(connect=min(10.0, wait), read=wait, write=60.0, pool=20.0)
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
        exchange = self.exchanges.begin(name, scope["method"], rest)
        try:
            request = self._outbound(route, rest, scope, receive, exchange)
        except _Refused as refused:
            if refused.status == 401:
                self.record.refused.append(f"{scope['method']} /{name}/{rest}")
            exchange.end(refused.message)
            await self._reply(send, refused.status, refused.message)
            return
        self.watch.began()
        try:
            await self._forward(route, request, scope, send, exchange)
        finally:
            self.watch.ended()

    async def _forward(
        self, route: Route, request: httpx.Request, scope: Scope, send: Send, exchange: Exchange
    ) -> None:
        scrubber = KeyScrubber(route.key.encode(), self.placeholder)
        method, call = str(scope["method"]), f"{scope['method']} {scope['path']}"
        assert self.client is not None
        try:
            response = await self.client.send(request, stream=True)
        except _TooLarge:
            exchange.end(_too_large())
            await self._reply(send, 413, _too_large())
            return
        except _ClientGone:
            exchange.end("the agent went away while it sent the request")
            return
        except httpx.HTTPError as exc:
            reason = scrubber.text(_describe(exc))
            where = _origin(route.upstream)
            exchange.end(reason)
            if _no_answer(exc):
                detail = f"{call}: no response headers within {self.watch.timeout_sec:g}s"
                self.watch.timed_out(route.name, detail)
                await self._reply(send, 504, f"envpools gateway: {where}: {detail}")
                return
            self.record.failures.append(f"{where}: {reason}")
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                self.watch.unreachable(route.name, reason)
            else:  # it took the connection and closed it without an answer
                self.watch.answered(route.name, method, 502, reason)
            await self._reply(send, 502, f"envpools gateway: cannot reach {where}: {reason}")
            return
        status = response.status_code
        self.record.statuses[status] = self.record.statuses.get(status, 0) + 1
        said: bytearray | None = None
        if status < 400:
            self.watch.answered(route.name, method, status)
        else:
            said = bytearray()
        recorded = False

        def record_error() -> None:
            """The error answer, with the provider's words, before the agent has it all
            (it may well call again at once: the order of calls is the streak's)."""
            nonlocal recorded
            if said is not None and not recorded:
                recorded = True
                message = provider_message(bytes(said)) or response.reason_phrase
                self.watch.answered(route.name, method, status, scrubber.text(message))

        try:
            await self._relay(response, send, scrubber, exchange, said, record_error)
        except httpx.HTTPError as exc:
            reason = scrubber.text(_describe(exc))
            exchange.end(reason)
            self.record.failures.append(f"{_origin(route.upstream)}: {reason}")
            if _no_answer(exc):
                detail = f"{call}: the answer stalled for {self.watch.timeout_sec:g}s"
                self.watch.timed_out(route.name, detail)
            elif said is None:
                self.watch.answered(route.name, method, 502, f"{call}: the answer broke off")
        finally:
            exchange.end()
            await response.aclose()
            record_error()

    def _outbound(
        self, route: Route, rest: str, scope: Scope, receive: Receive, exchange: Exchange
    ) -> httpx.Request:
        """The one place the outbound request is made (see the module); raises _Refused.

        The key goes in the provider's key header only, where the placeholder was; the
        body streams from the agent as it arrives (``_body``), with its declared length
        kept so that it goes out as the agent sent it.
        """
        headers: list[tuple[bytes, bytes]] = []
        authorised = chunked = False
        length: int | None = None
        key = route.key.encode()
        for raw_name, value in scope["headers"]:
            lower = raw_name.lower()
            if lower == b"content-length" and value.strip().isdigit():
                length = int(value)
                headers.append((raw_name, value.strip()))
                continue
            chunked = chunked or lower == b"transfer-encoding"
            if lower in _HOP_HEADERS or lower == b"accept-encoding":
                continue
            if lower in route.headers:
                swapped = _swap_key(value, self.placeholder, key)
                if swapped is not None:
                    value, authorised = swapped, True
            headers.append((raw_name, value))
        if not authorised:
            raise _Refused(401, "envpools gateway: this request carries no rollout key")
        if length is not None and length > MAX_REQUEST_BYTES:
            raise _Refused(413, _too_large())
        headers.append((b"accept-encoding", b"identity"))  # what comes back can be scrubbed
        url = f"{route.upstream}/{rest}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        body = self._body(receive, exchange) if length or chunked else None
        assert self.client is not None
        return self.client.build_request(scope["method"], url, headers=headers, content=body)

    async def _body(self, receive: Receive, exchange: Exchange) -> AsyncIterator[bytes]:
        """The agent's request body as it arrives, each chunk held within the budgets."""
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk: bytes = message.get("body", b"")
            total += len(chunk)
            if total > MAX_REQUEST_BYTES:
                raise _TooLarge()
            if chunk:
                mine = await self.budget.acquire(len(chunk))
                try:
                    shared = await GLOBAL_BUDGET.acquire(len(chunk))
                    try:
                        exchange.sent(chunk)
                        yield chunk  # httpx has written it before it asks for more
                    finally:
                        GLOBAL_BUDGET.release(shared)
                finally:
                    self.budget.release(mine)
            if not message.get("more_body"):
                return

    async def _relay(
        self,
        response: httpx.Response,
        send: Send,
        scrubber: KeyScrubber,
        exchange: Exchange,
        said: bytearray | None = None,
        before_end: Callable[[], None] | None = None,
    ) -> None:
        """The one response path: headers and body scrubbed of the key, body streamed.

        The body is decoded (``aiter_bytes``) so that a compressed echo of the key cannot
        pass unseen; it goes out without Content-Length or Content-Encoding.
        """
        dropped = _HOP_HEADERS | {b"content-encoding"}
        out = [
            (k, scrubber.text(v.decode("latin-1")).encode("latin-1"))
            for k, v in response.headers.raw
            if k.lower() not in dropped
        ]
        exchange.response(response.status_code, out)  # recorded as sent: decoded, scrubbed
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        async for chunk in response.aiter_bytes():
            if cleaned := scrubber.feed(chunk):
                if said is not None and len(said) < _ERROR_BODY_KEPT:
                    said += cleaned[: _ERROR_BODY_KEPT - len(said)]
                exchange.chunk(cleaned)
                await send({"type": "http.response.body", "body": cleaned, "more_body": True})
        rest = scrubber.flush()
        exchange.chunk(rest)
        if said is not None:
            said += rest[: max(0, _ERROR_BODY_KEPT - len(said))]
        if before_end is not None:
            before_end()
        await send({"type": "http.response.body", "body": rest})


def _swap_key(value: bytes, placeholder: bytes, key: bytes) -> bytes | None:
    """``<placeholder>`` or ``<scheme> <placeholder>`` with the real key; None otherwise."""
    text = value.strip()
    if text == placeholder:
        return key
    scheme, _, token = text.partition(b" ")
    if token.strip() == placeholder and _BEARER.fullmatch(scheme):
        return scheme + b" " + key
    return None


def _too_large() -> str:
    return f"envpools gateway: request body larger than {MAX_REQUEST_BYTES // (1024 * 1024)} MiB"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _no_answer(exc: httpx.HTTPError) -> bool:
    """A timeout waiting for the provider (not for a connection: that is unreachable)."""
    return isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout)


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
        self,
        routes: list[Route],
        *,
        isolated: bool,
        exchanges: ExchangeLog | None = None,
        provider_timeout: float = DEFAULT_PROVIDER_TIMEOUT_SEC,
    ) -> None:
        self.routes = {r.name: r for r in routes}
        self.placeholder = "sk-envpools-" + secrets.token_urlsafe(24)
        self.log = GatewayLog()
        self.watch = ProviderWatch(
            {r.name: _names(r) for r in routes}, timeout_sec=provider_timeout
        )
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
            _Proxy(
                self.routes,
                self.placeholder,
                self.log,
                exchanges or ExchangeLog(None),
                self.watch,
            ),
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


def _names(route: Route) -> RouteNames:
    known = provider(route.name)
    return RouteNames(
        route.key_name or known.key_names[0],
        known.base_url_name,
        _origin(route.upstream),
        stored_url=route.upstream != known.upstream(None),
    )


def open_gateway(
    routes: list[Route],
    *,
    isolated: bool,
    exchanges: ExchangeLog | None = None,
    provider_timeout: float = DEFAULT_PROVIDER_TIMEOUT_SEC,
) -> EgressGateway:
    """A started gateway; ``exchanges`` records each call it forwards (see exchanges.py);
    ``provider_timeout``: how long the provider may keep a call without an answer."""
    gateway = EgressGateway(
        routes, isolated=isolated, exchanges=exchanges, provider_timeout=provider_timeout
    )
    return gateway.start()


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
