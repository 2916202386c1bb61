"""Request bodies: the key is checked before a body is read, and a body has a size cap.

FastAPI reads a route's body before it solves the route's dependencies (auth among them),
and reads it whole: a client without a key could make the backend hold any amount of
memory before its 401. So, for every request that carries a body, this middleware

- answers 401 (the API's error envelope) without reading a byte of it unless the
  request presents a valid key (every route that takes a body needs one; the viewer's
  sign-in under ``/view/`` checks its own key or code, in a body capped at 64 KiB);
- answers 413 at once when ``Content-Length`` is over the cap, and otherwise counts the
  bytes as the app reads them, answering 413 as soon as they pass the cap (a chunked
  body has no length to check first).

The cap is ``ServerSettings.max_request_bytes`` (``ENVPOOLS_MAX_REQUEST_MB``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envpools_cli.server.api.auth import key_from_headers
from envpools_cli.server.errors import error_envelope

__all__ = ["AUTHENTICATED", "BodyLimitMiddleware"]

VIEW_PREFIX = "/view/"
"""The live viewer's paths (``server/view``), which authenticate their own sign-in."""
VIEW_MAX_BYTES = 64 * 1024

AUTHENTICATED = "authenticated"
"""``request.state`` key: (the key, its organisation) when this middleware checked it."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        length_header = headers.get(b"content-length", b"").strip()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        length = int(length_header) if length_header.isdigit() else None
        if not chunked and not length:
            await self.app(scope, receive, send)  # no body: nothing to guard
            return
        cap = self.max_bytes
        if str(scope.get("path", "")).startswith(VIEW_PREFIX):
            # The viewer signs in with a key or a code in a small body and checks it
            # itself (view/sessions.py); its bodies are capped small instead.
            cap = min(cap, VIEW_MAX_BYTES)
        elif not await self._authorised(scope, headers):
            await _answer(
                scope,
                send,
                401,
                "unauthorized",
                "missing or invalid API key: send 'Authorization: Bearer <key>' or "
                "'X-API-Key' (the body is not read without one)",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        if length is not None and length > cap:
            await _answer(scope, send, 413, "payload_too_large", self._too_large(length, cap))
            return
        received = 0
        started = answered = False

        async def counted() -> Message:
            # FastAPI turns any error while it reads a body into a 400, so the cap is
            # answered here (413) and the app is told the client has gone.
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    if not started and not answered:
                        answered = True
                        refusal = self._too_large(None, cap)
                        await _answer(scope, send, 413, "payload_too_large", refusal)
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 is the answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, watched)

    def _too_large(self, length: int | None, cap: int) -> str:
        limit = f"{cap / (1024 * 1024):g} MiB"
        sent = f" ({length} bytes)" if length is not None else ""
        return (
            f"the request body{sent} is larger than this backend accepts ({limit}); "
            "ENVPOOLS_MAX_REQUEST_MB raises the cap"
        )

    @staticmethod
    async def _authorised(scope: Scope, headers: dict[bytes, bytes]) -> bool:
        key = key_from_headers(
            headers.get(b"authorization", b"").decode("latin-1"),
            headers.get(b"x-api-key", b"").decode("latin-1"),
        )
        if key is None:
            return False
        app: Any = scope.get("app")
        store = app.state.service.store
        org = await to_thread.run_sync(store.org_for_key, key)
        if org is None:
            return False
        # The route's own auth finds it here instead of looking the key up again.
        scope.setdefault("state", {})[AUTHENTICATED] = (key, org)
        return True


async def _answer(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    """The error envelope, answered without reading the body (the connection then closes)."""
    rid = scope.get("state", {}).get("request_id") or f"req_{secrets.token_hex(8)}"
    body = json.dumps(error_envelope(rid, status, code, message)).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", rid.encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
