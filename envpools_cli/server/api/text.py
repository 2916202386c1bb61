"""Text that cannot be encoded is refused at the door.

JSON lets a request carry a lone UTF-16 surrogate (``"\\ud800"``): Python decodes it into a
``str`` that no UTF-8 encoder takes. Stored, it made every later answer that held it fail
(the rollout list, a get, a support bundle), so it is refused before any route sees it:
a body whose JSON holds one anywhere (a value or a key, at any depth) is answered 422
``validation_error`` naming the field, and nothing is created. (A path or a query cannot
hold one: the server decodes their percent-escapes with U+FFFD for what is not UTF-8.)

The check is cheap where it matters: such a string can only come from a ``\\uD800``-
``\\uDFFF`` escape (raw surrogate bytes are not UTF-8, and FastAPI refuses them as bad
JSON), so a body is parsed here only when its bytes hold one of those escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envpools_cli.server.errors import ApiError, error_response

__all__ = ["RefuseUnencodableText", "unencodable_field"]

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def shown(text: str) -> str:
    """``text`` with its lone surrogates escaped: safe to put in an answer."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unencodable_field(value: Any, where: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where in a JSON value a string (or a key) holds a lone surrogate, else None."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return (*path, key)
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, str(n))) for n, child in enumerate(item))
    return None


def _in_body(body: bytes) -> tuple[str, ...] | None:
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None  # not JSON: the route refuses it as such
    return unencodable_field(value, ("body",))


def _refusal(where: tuple[str, ...]) -> ApiError:
    loc = [shown(part) for part in where]
    field = ".".join(loc[1:] if loc[0] == "body" and len(loc) > 1 else loc)
    msg = (
        "text must be valid Unicode: a lone UTF-16 surrogate (\\ud800-\\udfff) cannot be "
        "stored or sent back as UTF-8"
    )
    details = [{"loc": loc, "msg": msg, "type": "string_unicode"}]
    return ApiError(422, "validation_error", f"{field}: {msg}", details=details)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read here, then the real stream."""
    pending: Iterator[Message] = iter([{"type": "http.request", "body": body}])

    async def again() -> Message:
        message = next(pending, None)
        return message if message is not None else await receive()

    return again


class RefuseUnencodableText:
    """Pure ASGI, so that streamed answers stay streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if (where := _in_body(body)) is not None:
            response = error_response(Request(scope), _refusal(where))
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)
