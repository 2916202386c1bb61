"""Every error the client raises, in one tree.

    EnvPoolsError
    ├── ConfigurationError (ValueError)       bad settings, raised before any request
    │   └── MissingAPIKeyError                no key given and none in the environment
    ├── InvalidRequestError (ValueError)      a request body fails client-side validation
    ├── TransportError (httpx.TransportError) the network failed, after the retries
    │   └── OutcomeUnknownError               ... after a keyed create may have been done
    ├── StreamGapError                        the event stream skipped events it cannot replay
    ├── InvalidResponseError                  a 2xx whose body is not the JSON the API sends
    └── APIError (httpx.HTTPStatusError)      the server answered non-2xx
        ├── ValidationError                   400, 422
        ├── AuthenticationError               401
        ├── PaymentRequiredError              402 (spend limit)
        ├── PermissionDeniedError             403
        │   └── PlanGatingError               403 plan_required / feature_not_available / ...
        ├── NotFoundError                     404
        ├── ConflictError                     409 (incl. idempotency_conflict)
        ├── RateLimitError                    429 (queue_full, rate_limited)
        └── ServerError                       5xx

APIError subclasses httpx.HTTPStatusError and TransportError subclasses
httpx.TransportError, so code written against the official SDK (which lets httpx's
exceptions escape) keeps catching what it caught before.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "EnvPoolsError",
    "InvalidRequestError",
    "InvalidResponseError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "PlanGatingError",
    "RateLimitError",
    "ServerError",
    "StreamGapError",
    "TransportError",
    "ValidationError",
    "error_from_response",
    "parse_retry_after",
]

PLAN_GATING_CODES = frozenset({"plan_required", "feature_not_available", "upgrade_required"})
DEFAULT_UPGRADE_URL = "https://usesynth.ai/pricing"
_BODY_SNIPPET = 500


class EnvPoolsError(Exception):
    """Root of every error raised by envpools."""


class ConfigurationError(EnvPoolsError, ValueError):
    """The client cannot be used as configured."""


class MissingAPIKeyError(ConfigurationError):
    """No API key was given, none is set in the environment, and no CLI profile has one."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "api_key is required (provide api_key=..., set ENVPOOLS_API_KEY or "
            "SYNTH_API_KEY, or run 'envpools local up' (a local backend) or 'envpools auth "
            "login': the client then uses the CLI's active profile)"
        )


class InvalidRequestError(EnvPoolsError, ValueError):
    """A request failed validation on the client; nothing was sent."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


class InvalidResponseError(EnvPoolsError):
    """A 2xx response that is not JSON: the URL is not an envpools backend (a proxy page...)."""


class TransportError(EnvPoolsError, httpx.TransportError):
    """The request could not be completed over the network (after retries)."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class OutcomeUnknownError(TransportError):
    """Every attempt of a keyed request failed after it was sent: it may have been done.

    Repeating it with the same ``idempotency_key`` is safe (the server does it at most
    once) and is the only way to learn what happened; a new key could do it twice.
    """

    def __init__(
        self, message: str, *, idempotency_key: str, request: httpx.Request | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.idempotency_key = idempotency_key


class StreamGapError(EnvPoolsError):
    """Events between ``after_seq`` and ``next_seq`` never arrived and cannot be replayed."""

    def __init__(self, *, after_seq: int, next_seq: int, last_event_id: str | None) -> None:
        missing = next_seq - after_seq - 1
        super().__init__(
            f"event stream gap: {missing} event(s) missing after seq {after_seq} "
            f"(next seq {next_seq})"
        )
        self.after_seq = after_seq
        self.next_seq = next_seq
        self.last_event_id = last_event_id


class APIError(EnvPoolsError, httpx.HTTPStatusError):
    """The server answered with a non-2xx status.

    Also the official SDK's ``SynthAPIError``, so both constructors work:
    ``APIError(message, status_code=404, code="not_found")`` (this client's) and
    ``SynthAPIError("not_found", message, status_code=404)`` or
    ``SynthAPIError(code=..., message=...)`` (the SDK's: code first).
    """

    status_code: int | None
    code: str
    message: str
    request_id: str | None
    rollout_id: str | None
    retryable: bool
    retry_after_ms: int | None
    details: Any
    body: Any

    def __init__(
        self,
        code_or_message: str | None = None,
        message: str | None = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        rollout_id: str | None = None,
        retryable: bool = False,
        retry_after_ms: int | None = None,
        details: Any = None,
        body: Any = None,
        response: httpx.Response | None = None,
    ) -> None:
        if message is None:
            message = code_or_message
        elif code_or_message is not None:
            if code is not None:
                raise TypeError("give the error code positionally or as code=, not both")
            code = code_or_message
        if message is None:
            raise TypeError("an API error needs a message")
        if code is None:
            code = _default_code(status_code) if status_code is not None else "unknown_error"
        # HTTPStatusError.__init__ insists on a response; plan gating found by the
        # client-side /me check has none, so set the fields by hand.
        httpx.HTTPError.__init__(self, message)
        if response is not None:
            self.request = response.request
        self.response = response  # type: ignore[assignment]
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.rollout_id = rollout_id
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms
        self.details = details
        self.body = body

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIError:
        """The error a non-2xx response stands for (the SDK's constructor of the same name)."""
        if not response.is_stream_consumed:
            response.read()
        return error_from_response(response)

    def __str__(self) -> str:
        suffix = f" (request_id: {self.request_id})" if self.request_id else ""
        return f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "http_status": self.status_code,
            "request_id": self.request_id,
            "retryable": self.retryable,
            "details": self.details,
        }


class ValidationError(APIError):
    """400/422: the server rejected the request body or parameters."""


class AuthenticationError(APIError):
    """401: the API key is missing, unknown or revoked."""


class PaymentRequiredError(APIError):
    """402: a spend limit was reached."""


class PermissionDeniedError(APIError):
    """403: the key is valid but may not do this."""


class PlanGatingError(PermissionDeniedError):
    """403: the organisation's plan does not include Environment Pools."""

    def __init__(
        self,
        feature: str = "environment_pools",
        current_plan: str = "free",
        required_plans: tuple[str, ...] = ("pro", "team"),
        upgrade_url: str = DEFAULT_UPGRADE_URL,
        *,
        request_id: str | None = None,
        code: str = "plan_required",
        body: Any = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.feature = feature
        self.current_plan = current_plan
        self.required_plans = tuple(required_plans)
        self.upgrade_url = upgrade_url
        feature_name = feature.replace("_", " ").title()
        message = (
            f"{feature_name} requires a {', '.join(self.required_plans)} plan. "
            f"Your current plan is '{current_plan}'. Upgrade at {upgrade_url}"
        )
        super().__init__(
            message,
            status_code=403,
            code=code,
            request_id=request_id,
            body=body,
            response=response,
        )


class NotFoundError(APIError):
    """404: no such resource (or not visible to this organisation)."""


class ConflictError(APIError):
    """409: the request conflicts with the current state (or an idempotency key)."""


class RateLimitError(APIError):
    """429: too many requests or the pool's queue is full."""

    retry_after: float | None = None


class ServerError(APIError):
    """5xx: the server failed."""


_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}

_DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
}


def _class_for(status: int) -> type[APIError]:
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return APIError


def _default_code(status: int) -> str:
    if status in _DEFAULT_CODES:
        return _DEFAULT_CODES[status]
    return "internal" if status >= 500 else f"http_{status}"


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (delta or date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _BODY_SNIPPET else text[:_BODY_SNIPPET] + "…"


def _error_fields(body: Any, text: str, reason: str) -> dict[str, Any]:
    """Pull code/message/details out of any body shape servers are known to send."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return err
        if isinstance(err, str):
            return {"message": err, "code": body.get("code")}
        detail = body.get("detail")
        if isinstance(detail, dict):
            return detail
        if isinstance(detail, str):
            return {"message": detail}
        if isinstance(detail, list):
            return {"message": "request validation failed", "details": detail}
        if "message" in body or "code" in body:
            return body
        return {"message": _snippet(json.dumps(body)) if body else reason}
    if isinstance(body, list):
        return {"message": _snippet(json.dumps(body)), "details": body}
    return {"message": _snippet(text) if text.strip() else reason}


def error_from_response(response: httpx.Response) -> APIError:
    """Build the APIError for a non-2xx response; the body must already be read."""
    status = response.status_code
    try:
        text = response.text
    except httpx.ResponseNotRead:  # the connection died while reading the error body
        text = ""
    try:
        body: Any = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    fields = _error_fields(body, text, response.reason_phrase or f"HTTP {status}")
    code = str(fields.get("code") or _default_code(status))
    message = str(fields.get("message") or response.reason_phrase or f"HTTP {status}")
    request_id = fields.get("request_id") or response.headers.get("x-request-id")
    request_id = str(request_id) if request_id else None

    if status == 403 and (
        code in PLAN_GATING_CODES or "plan" in message.lower() or "upgrade" in message.lower()
    ):
        return PlanGatingError(
            current_plan=str(fields.get("current_plan") or fields.get("tier") or "free"),
            upgrade_url=str(fields.get("upgrade_url") or DEFAULT_UPGRADE_URL),
            request_id=request_id,
            code=code if code in PLAN_GATING_CODES else "plan_required",
            body=body,
            response=response,
        )

    retryable_field = fields.get("retryable")
    retryable = (
        retryable_field
        if isinstance(retryable_field, bool)
        else status in (408, 429) or (status >= 500 and status != 501)
    )
    retry_after = _retry_after_seconds(fields.get("retry_after_ms"), response.headers)
    rollout_id = fields.get("rollout_id")
    cls = _class_for(status)
    error = cls(
        message,
        status_code=status,
        code=code,
        request_id=request_id,
        rollout_id=str(rollout_id) if rollout_id else None,
        retryable=retryable,
        retry_after_ms=None if retry_after is None else round(retry_after * 1000),
        details=fields.get("details"),
        body=body,
        response=response,
    )
    if isinstance(error, RateLimitError):
        error.retry_after = retry_after
    return error


def _retry_after_seconds(in_body: Any, headers: Mapping[str, str]) -> float | None:
    """The body's ``retry_after_ms`` (the error envelope's field), else the headers'."""
    if isinstance(in_body, int | float) and not isinstance(in_body, bool) and in_body >= 0:
        return float(in_body) / 1000.0
    return parse_retry_after(headers)
