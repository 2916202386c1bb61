"""The error envelope of CONTRACT §6 for every error the server answers, and request ids."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envpools_cli.server.state.exhaustion import exhaustion
from envpools_cli.server.state.vault import VaultError

__all__ = [
    "ApiError",
    "EncodedJSONResponse",
    "RequestIdMiddleware",
    "Resource",
    "error_envelope",
    "install_error_handlers",
    "invalid",
    "request_id_of",
    "resources",
]

log = logging.getLogger("envpools.server")

_UNPARSABLE_BODY = "There was an error parsing the body"
_RETRYABLE = {408, 429, 500, 502, 503, 504}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class EncodedJSONResponse(JSONResponse):
    """JSON that always encodes: UTF-8 text, or ``\\u`` escapes where a stored string holds
    a lone surrogate (a value from before such text was refused at the door), so that no
    stored value can make a read fail."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(
                content, ensure_ascii=True, allow_nan=False, indent=None, separators=(",", ":")
            ).encode("ascii")


class ApiError(Exception):
    """An expected failure, answered with the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.extra = extra


def invalid(exc: pydantic.ValidationError) -> ApiError:
    """A 422 ``validation_error`` naming the first problem, with all of them in details."""
    details: list[dict[str, Any]] = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    first = details[0]
    where = ".".join(first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return ApiError(422, "validation_error", message, details=details)


def request_id_of(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if not rid:
        rid = f"req_{secrets.token_hex(8)}"
        request.state.request_id = rid
    return str(rid)


def error_envelope(
    request_id: str, status: int, code: str, message: str, details: Any = None, **extra: Any
) -> dict[str, Any]:
    """CONTRACT §6's ``{"error": {...}}``."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": request_id,
        "retryable": status in _RETRYABLE,
        **extra,
    }
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_body(
    request: Request, status: int, code: str, message: str, details: Any = None, **extra: Any
) -> dict[str, Any]:
    return error_envelope(request_id_of(request), status, code, message, details, **extra)


def error_response(request: Request, error: ApiError) -> JSONResponse:
    body = error_body(
        request, error.status, error.code, error.message, error.details, **error.extra
    )
    headers = {"x-request-id": request_id_of(request), **error.headers}
    return EncodedJSONResponse(body, status_code=error.status, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        details.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")).removeprefix("Value error, "),
                "type": err.get("type"),
            }
        )
    return details


@dataclass(frozen=True)
class Resource:
    """A path the app serves and the methods it answers there, for ``Allow``."""

    pattern: re.Pattern[str]
    params: int
    methods: frozenset[str]


def resources(paths: Iterable[tuple[str, Iterable[str]]]) -> list[Resource]:
    """``(path template, methods)`` pairs, several per path, grouped into resources."""
    grouped: dict[str, set[str]] = {}
    for path, methods in paths:
        grouped.setdefault(path, set()).update(m.upper() for m in methods)
    return [
        Resource(compile_path(path)[0], path.count("{"), frozenset(methods))
        for path, methods in grouped.items()
    ]


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource a 405 answers for, for its ``Allow`` header.

    Starlette names only the first route whose path matched. Here every route of the path
    counts, and where a literal path (``/rollouts/batch``) and a parameter
    (``/rollouts/{rollout_id}``) both match, the literal one is the resource meant.
    """
    table: list[Resource] = getattr(request.app.state, "resources", [])
    path = request.url.path
    matched = [r for r in table if r.pattern.match(path)]
    if not matched:
        return []
    fewest = min(r.params for r in matched)
    return sorted(set().union(*(r.methods for r in matched if r.params == fewest)))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body")
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return error_response(request, ApiError(422, "validation_error", message, details=details))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and message == _UNPARSABLE_BODY:  # FastAPI's, e.g. not UTF-8
            text = "the body is not valid JSON"
            details = [{"loc": ["body"], "msg": text, "type": "json_invalid"}]
            invalid_body = ApiError(422, "validation_error", text, details=details)
            return error_response(request, invalid_body)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
        return error_response(request, ApiError(exc.status_code, code, message, headers=headers))

    @app.exception_handler(VaultError)
    async def _vault(request: Request, exc: VaultError) -> JSONResponse:
        return error_response(request, ApiError(503, "credential_key_unavailable", str(exc)))

    def exhausted(request: Request, exc: BaseException) -> JSONResponse | None:
        """The machine's disk or open files ran out: said as such, 507 or 503, not 500."""
        data_dir = getattr(request.app.state, "data_dir", None)
        found = exhaustion(exc, data_dir) if data_dir is not None else None
        if found is None:
            return None
        log.warning("%s %s: %s", request.method, request.url.path, found.message)
        headers = {"Retry-After": "5"} if found.status == 503 else None
        return error_response(
            request, ApiError(found.status, found.code, found.message, headers=headers)
        )

    # Handled here (by exception type) rather than by the catch-all below, which answers
    # and then lets the error end the connection.
    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def _machine(request: Request, exc: Exception) -> JSONResponse:
        if (answer := exhausted(request, exc)) is not None:
            return answer
        raise exc

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        if (answer := exhausted(request, exc)) is not None:
            return answer
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request, ApiError(500, "internal", "internal server error; see the server log")
        )


class RequestIdMiddleware:
    """Give every request an id, answer it in ``x-request-id`` (pure ASGI: streams intact)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = f"req_{secrets.token_hex(8)}"
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
