"""The one seam between the client and the network.

``HTTPSession`` owns the process's ``httpx.Client`` (so connections are reused), adds
auth and identification headers, applies the declarative ``RetryPolicy`` and turns
every failure into the error tree of ``errors.py``. Tests swap the transport
(``httpx.MockTransport``) and the sleep function; nothing else needs patching.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import httpx

from envpools_cli import __version__

from .errors import OutcomeUnknownError, TransportError, error_from_response, parse_retry_after
from .settings import api_url, fixed_url, resolve_api_key, resolve_backend_base

__all__ = [
    "Connection",
    "HTTPSession",
    "RequestOptions",
    "RetryPolicy",
    "default_session",
    "set_default_session",
    "use_session",
]

log = logging.getLogger("envpools.http")

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# The request never reached the server, so repeating it cannot do anything twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a request.

    Delays grow as ``initial_delay * 2**attempt`` up to ``max_delay`` and lose up to
    ``jitter`` of themselves at random so that many clients do not retry in step.
    A server's ``Retry-After`` wins when it is at most ``max_retry_after``.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    unknown_outcome_budget: float = 30.0
    """Seconds a keyed request (a create) keeps being retried, past ``max_retries``,
    while an attempt may have been done: long enough to ride out a restart and learn
    the outcome, bounded so that a caller is told rather than left waiting."""
    retry_statuses: frozenset[int] = field(
        default_factory=lambda: frozenset({408, 429, 500, 502, 503, 504})
    )

    def retries_status(self, status: int) -> bool:
        return status in self.retry_statuses

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        if retry_after is not None and retry_after <= self.max_retry_after:
            return retry_after
        base = min(self.initial_delay * (2**attempt), self.max_delay)
        return float(base * (1.0 - self.jitter * rand()))


class RequestOptions(TypedDict, total=False):
    """What a request may carry besides its method, URL and key."""

    json: Any
    params: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    timeout: float | httpx.Timeout | None
    """Seconds (default 30); None waits for ever."""
    idempotent: bool | None
    """Whether repeating it is safe; None: GET/PUT/DELETE... or a keyed request."""


class _TLSWhenNeeded(httpx.BaseTransport):
    """httpx's default transport, with the TLS one built at the first ``https://`` request.

    httpx builds its TLS context (verification on, the CA bundle loaded: ~30 ms, a tenth
    of a command's start) when a client is made, even when every request goes to a
    local backend over ``http://``.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        # Only http:// requests come here. Its TLS context trusts no certificate, so it
        # could not quietly accept one if an https:// request ever did.
        self._plain = httpx.HTTPTransport(
            limits=limits, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        )
        self._tls: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            return self._plain.handle_request(request)
        with self._lock:
            if self._tls is None:
                self._tls = httpx.HTTPTransport(limits=self._limits)
        return self._tls.handle_request(request)

    def close(self) -> None:
        self._plain.close()
        if self._tls is not None:
            self._tls.close()


class HTTPSession:
    """Requests with auth, retries and typed errors over one shared ``httpx.Client``."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self.user_agent = user_agent or f"envpools/{__version__} python-httpx/{httpx.__version__}"
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
                self._client = httpx.Client(
                    transport=self._transport or _TLSWhenNeeded(limits),
                    follow_redirects=False,
                    limits=limits,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _headers(self, api_key: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {api_key}", "User-Agent": self.user_agent}
        if extra:
            headers.update(extra)
        return headers

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = self.retry.delay(attempt, retry_after=retry_after, rand=self.rand)
        log.debug("retrying in %.2fs (attempt %d)", delay, attempt + 1)
        self.sleep(delay)

    def request(
        self, method: str, url: str, *, api_key: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send one logical request; return the 2xx response with its body read."""
        with self._open(method, url, api_key=api_key, **options) as response:
            response.read()
            return response

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        api_key: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = 30.0,
        retry: bool = True,
    ) -> Iterator[httpx.Response]:
        """A 2xx response whose body is read by the caller; always closed on exit."""
        with self._open(
            method,
            url,
            api_key=api_key,
            params=params,
            headers=headers,
            timeout=timeout,
            idempotent=None if retry else False,
            connect_retries=retry,
        ) as response:
            yield response

    @contextmanager
    def _open(
        self,
        method: str,
        url: str,
        *,
        api_key: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = 30.0,
        idempotent: bool | None = None,
        connect_retries: bool = True,
    ) -> Iterator[httpx.Response]:
        all_headers = self._headers(api_key, headers)
        if idempotent is None:
            idempotent = method.upper() in _IDEMPOTENT_METHODS or "Idempotency-Key" in all_headers
        request = self.client.build_request(
            method,
            url,
            json=json,
            params=params or None,
            headers=all_headers,
            timeout=timeout if timeout is not None else httpx.Timeout(None),
        )
        key = all_headers.get("Idempotency-Key")
        first_sent = self.clock()
        maybe_done = False  # a keyed attempt may have been carried out by the server
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                maybe_done = maybe_done or (key is not None and not isinstance(exc, _NOT_SENT))
                can_retry = (isinstance(exc, _NOT_SENT) and connect_retries) or idempotent
                if can_retry and self._may_retry(attempt, maybe_done, first_sent):
                    log.debug("%s %s: %s", method, request.url, type(exc).__name__)
                    self._wait(attempt, None)
                    attempt += 1
                    continue
                if key is not None and maybe_done:
                    raise self._unknown(request, key, attempt, exc) from exc
                raise TransportError(
                    f"{method} {request.url} failed: {exc or type(exc).__name__}",
                    request=request,
                ) from exc
            log.debug(
                "%s %s -> %d (%.0f ms)",
                method,
                request.url,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            if response.is_success:
                try:
                    yield response
                finally:
                    response.close()
                return
            try:
                response.read()
            except httpx.TransportError:
                pass
            finally:
                response.close()
            error = error_from_response(response)
            transient = self.retry.retries_status(response.status_code)
            maybe_done = maybe_done or (key is not None and response.status_code >= 500)
            if idempotent and transient and self._may_retry(attempt, maybe_done, first_sent):
                self._wait(attempt, parse_retry_after(response.headers))
                attempt += 1
                continue
            if key is not None and maybe_done and transient:
                raise self._unknown(request, key, attempt, error) from error
            raise error

    def _may_retry(self, attempt: int, maybe_done: bool, first_sent: float) -> bool:
        if attempt < self.retry.max_retries:
            return True
        return maybe_done and self.clock() - first_sent < self.retry.unknown_outcome_budget

    @staticmethod
    def _unknown(
        request: httpx.Request, key: str, attempt: int, last: Exception
    ) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            f"{request.method} {request.url.path}: the outcome is unknown after "
            f"{attempt + 1} attempts (last: {last or type(last).__name__}); the server may "
            f"have done it. Retrying with Idempotency-Key {key} is safe: it is done at most once.",
            idempotency_key=key,
            request=request,
        )


_default: HTTPSession | None = None
_default_lock = threading.Lock()


def default_session() -> HTTPSession:
    """The process-wide session used by the module-level functions."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HTTPSession()
        return _default


def set_default_session(session: HTTPSession | None) -> HTTPSession | None:
    """Replace the process-wide session; return the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, session
        return previous


@contextmanager
def use_session(session: HTTPSession) -> Iterator[HTTPSession]:
    """Route the module-level functions through ``session`` inside the block."""
    previous = set_default_session(session)
    try:
        yield session
    finally:
        set_default_session(previous)


@dataclass(frozen=True)
class Connection:
    """Where, as whom and how: the one object every request of the client goes through.

    A field left ``None`` is resolved at each request (flag > env > profile > default,
    ``settings.py``), so a connection made before ``SYNTH_API_KEY`` is set works once
    it is. Without ``session`` the process-wide one (``default_session()``, swapped by
    ``use_session``) carries the request, with its ``RetryPolicy``. Timeouts are per
    call: each method's default is the official SDK's for that call.
    """

    backend_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    session: HTTPSession | None = None

    @property
    def http(self) -> HTTPSession:
        return self.session or default_session()

    @property
    def retry(self) -> RetryPolicy:
        return self.http.retry

    def key(self) -> str:
        return resolve_api_key(self.api_key)

    def url(self, suffix: str, *, fixed: bool = False) -> str:
        """``suffix`` under the API version's prefix, or under the host (``fixed``)."""
        base = resolve_backend_base(self.backend_base)
        return (
            fixed_url(base, suffix)
            if fixed
            else api_url(base, suffix, api_version=self.api_version)
        )

    def request(
        self, method: str, suffix: str, *, fixed: bool = False, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        url = self.url(suffix, fixed=fixed)
        return self.http.request(method, url, api_key=self.key(), **options)

    def stream(
        self, suffix: str, *, timeout: float, params: Mapping[str, str] | None = None
    ) -> AbstractContextManager[httpx.Response]:
        """A GET whose body the caller reads (large artifacts, zips)."""
        url = self.url(suffix)
        return self.http.stream("GET", url, api_key=self.key(), params=params, timeout=timeout)
