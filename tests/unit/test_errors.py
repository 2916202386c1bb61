from __future__ import annotations

import httpx
import pytest

from envpools_cli.client import (
    APIError,
    AuthenticationError,
    ConflictError,
    EnvPoolsError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PlanGatingError,
    RateLimitError,
    ServerError,
    ValidationError,
    get_rollout,
)
from envpools_cli.client.errors import error_from_response, parse_retry_after

from .conftest import Recorder


def _response(status: int, **kwargs: object) -> httpx.Response:
    request = httpx.Request("GET", "http://backend.test/v1/rollouts/r1")
    response = httpx.Response(status, request=request, **kwargs)  # type: ignore[arg-type]
    response.read()
    return response


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, ValidationError, "bad_request"),
        (401, AuthenticationError, "unauthorized"),
        (402, PaymentRequiredError, "payment_required"),
        (403, PermissionDeniedError, "forbidden"),
        (404, NotFoundError, "not_found"),
        (409, ConflictError, "conflict"),
        (422, ValidationError, "validation_error"),
        (429, RateLimitError, "rate_limited"),
        (500, ServerError, "internal"),
        (502, ServerError, "internal"),
        (503, ServerError, "internal"),
        (418, APIError, "http_418"),
    ],
)
def test_every_status_maps_to_its_class(status: int, cls: type[APIError], code: str) -> None:
    error = error_from_response(_response(status, text="boom"))
    assert type(error) is cls
    assert error.status_code == status
    assert error.code == code
    assert isinstance(error, EnvPoolsError)
    assert isinstance(error, httpx.HTTPStatusError), "SDK users catch httpx.HTTPStatusError"
    assert error.response is not None and error.response.status_code == status


def test_envelope_fields_are_carried() -> None:
    error = error_from_response(
        _response(
            404,
            json={
                "error": {
                    "code": "not_found",
                    "message": "Rollout 'r1' not found",
                    "request_id": "req_1",
                    "retryable": False,
                    "details": [{"field": "rollout_id"}],
                }
            },
        )
    )
    assert error.message == "Rollout 'r1' not found"
    assert error.request_id == "req_1"
    assert error.details == [{"field": "rollout_id"}]
    assert str(error) == "Rollout 'r1' not found (request_id: req_1)"


def test_request_id_falls_back_to_header() -> None:
    error = error_from_response(_response(500, text="oops", headers={"x-request-id": "req_h"}))
    assert error.request_id == "req_h"
    assert error.message == "oops"
    assert error.retryable is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"json": {"detail": "Not authenticated"}}, "Not authenticated"),
        ({"json": {"detail": [{"loc": ["body", "x"], "msg": "bad"}]}}, "request validation failed"),
        ({"json": ["a", "b"]}, '["a", "b"]'),
        ({"json": {"error": "flat string"}}, "flat string"),
        ({"text": "<html>bad gateway</html>"}, "<html>bad gateway</html>"),
        ({"text": ""}, "Unprocessable Entity"),
        ({"json": {"code": "weird", "message": "top level"}}, "top level"),
    ],
)
def test_tolerates_every_body_shape(kwargs: dict[str, object], message: str) -> None:
    error = error_from_response(_response(422, **kwargs))
    assert isinstance(error, ValidationError)
    assert error.message == message


def test_plan_gating_message_matches_the_sdk() -> None:
    error = error_from_response(
        _response(
            403,
            json={
                "error": {
                    "code": "plan_required",
                    "message": "Pro plan required",
                    "current_plan": "trial",
                    "request_id": "req_p",
                }
            },
        )
    )
    assert isinstance(error, PlanGatingError)
    assert isinstance(error, PermissionDeniedError)
    assert error.message == (
        "Environment Pools requires a pro, team plan. Your current plan is 'trial'. "
        "Upgrade at https://usesynth.ai/pricing"
    )
    assert error.current_plan == "trial"
    assert error.required_plans == ("pro", "team")
    assert error.request_id == "req_p"


@pytest.mark.parametrize("code", ["feature_not_available", "upgrade_required"])
def test_other_gating_codes(code: str) -> None:
    body = {"error": {"code": code, "message": "x", "upgrade_url": "https://u/p", "tier": "free"}}
    error = error_from_response(_response(403, json=body))
    assert isinstance(error, PlanGatingError)
    assert error.upgrade_url == "https://u/p"
    assert error.current_plan == "free"


def test_plain_forbidden_is_not_gating() -> None:
    body = {"error": {"code": "forbidden", "message": "not your pool"}}
    error = error_from_response(_response(403, json=body))
    assert type(error) is PermissionDeniedError


def test_plan_gating_constructible_like_the_sdk() -> None:
    error = PlanGatingError(feature="environment_pools", current_plan="free")
    assert "Your current plan is 'free'" in str(error)


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response(
        _response(
            429,
            json={"error": {"code": "queue_full", "message": "full"}},
            headers={"Retry-After": "7"},
        )
    )
    assert isinstance(error, RateLimitError)
    assert error.code == "queue_full"
    assert error.retry_after == 7.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470) == 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_functions_raise_the_tree(recorder: Recorder) -> None:
    recorder.handler = lambda request: httpx.Response(
        404, json={"error": {"code": "not_found", "message": "nope", "request_id": "r"}}
    )
    with pytest.raises(NotFoundError) as info:
        get_rollout("missing")
    assert info.value.request_id == "r"
    assert len(recorder.requests) == 1, "404 is not retried"


def test_sdk_constructor_spellings() -> None:
    """Code written against SDK 0.9.6 builds ``SynthAPIError`` with the code first."""
    from envpools_cli.client import SynthAPIError

    positional = SynthAPIError("not_found", "gone", status_code=404, rollout_id="r1")
    assert (positional.code, positional.message, positional.status_code) == (
        "not_found",
        "gone",
        404,
    )
    assert positional.rollout_id == "r1"
    keywords = SynthAPIError(code="queue_full", message="full", retryable=True, retry_after_ms=250)
    assert (keywords.code, keywords.message, keywords.retryable) == ("queue_full", "full", True)
    assert keywords.retry_after_ms == 250 and keywords.status_code is None
    ours = APIError("boom", status_code=500)
    assert (ours.code, ours.message) == ("internal", "boom")
    with pytest.raises(TypeError):
        SynthAPIError("a", "b", code="c")
    with pytest.raises(TypeError):
        SynthAPIError()


def test_from_response_fills_rollout_id_and_retry_after_ms() -> None:
    from envpools_cli.client import SynthAPIError

    response = _response(
        429,
        json={
            "error": {
                "code": "queue_full",
                "message": "pool queue is full",
                "rollout_id": "r-9",
                "retry_after_ms": 1500,
                "retryable": True,
            }
        },
    )
    error = SynthAPIError.from_response(response)
    assert isinstance(error, RateLimitError)
    assert (error.code, error.rollout_id, error.retry_after_ms) == ("queue_full", "r-9", 1500)
    assert error.retry_after == 1.5
    headers_only = error_from_response(_response(503, headers={"Retry-After": "2"}, text="x"))
    assert headers_only.retry_after_ms == 2000 and headers_only.rollout_id is None


def test_from_response_reads_an_unread_streamed_response() -> None:
    from envpools_cli.client import SynthAPIError

    request = httpx.Request("GET", "http://backend.test/v1/rollouts/r1")
    response = httpx.Response(
        404,
        request=request,
        stream=httpx.ByteStream(b'{"error": {"code": "not_found", "message": "no"}}'),
    )
    error = SynthAPIError.from_response(response)
    assert isinstance(error, NotFoundError) and error.message == "no"
