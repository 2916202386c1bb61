"""The gateway's verdict on a rollout's provider calls (``provider_watch``): when the
provider, not the agent, failed it, and when an agent's own retry must be left alone."""

from __future__ import annotations

import pytest

from envpools_cli import error_codes
from envpools_cli.server.sandbox.provider_watch import (
    FAILURE_STREAK,
    STREAK_SEC,
    ProviderWatch,
    RouteNames,
    classify_status,
    provider_message,
)

ROUTES = {"anthropic": RouteNames("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "http://127.0.0.1:9")}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(clock: Clock | None = None) -> ProviderWatch:
    return ProviderWatch(ROUTES, timeout_sec=3, clock=clock or Clock())


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (200, "ok"),
        (201, "ok"),
        (401, "provider_auth"),
        (403, "provider_auth"),
        (429, "provider_rate_limited"),
        (500, "provider_error"),
        (502, "provider_error"),
        (529, "provider_error"),
        (400, None),
        (404, None),
        (413, None),
    ],
)
def test_statuses(status: int, code: str | None) -> None:
    assert classify_status(status) == code


def test_every_code_is_a_provider_code_in_the_table() -> None:
    codes = {"provider_auth", "provider_rate_limited", "provider_error"}
    codes |= {"provider_unreachable", "provider_timeout"}
    for code in codes:
        entry = error_codes.lookup(code)
        assert entry is not None and entry.kind == "provider", code
    transient = {c for c in codes if error_codes.is_transient("error", {"code": c})}
    assert transient == {"provider_rate_limited", "provider_error", "provider_timeout"}


def test_a_refused_key_ends_at_once_with_what_to_do() -> None:
    w = watch()
    w.began()
    w.answered("anthropic", "POST", 401, "authentication_error: invalid x-api-key")
    w.ended()
    verdict = w.verdict()
    assert verdict is not None and verdict.code == "provider_auth"
    assert "invalid x-api-key" in verdict.message
    assert "envpools credentials rotate ANTHROPIC_API_KEY" in verdict.message
    assert "what to do:" in verdict.message
    error = verdict.as_error()
    assert error["code"] == "provider_auth" and error["provider_status"] == 401


def test_a_refused_get_is_not_a_model_call() -> None:
    w = watch()
    w.answered("anthropic", "GET", 403, "no models for you")
    w.answered("anthropic", "GET", 500, "no models for you")
    assert w.verdict() is None
    assert w.verdict(final=True) is None


def test_one_429_then_success_is_the_agents_own_retry() -> None:
    w = watch()
    w.answered("anthropic", "POST", 429, "slow down")
    assert w.verdict() is None
    w.answered("anthropic", "POST", 200)
    w.answered("anthropic", "POST", 500, "oops")
    w.answered("anthropic", "POST", 200)
    assert w.verdict() is None
    assert w.verdict(final=True) is None, "the last call succeeded"


@pytest.mark.parametrize(
    ("status", "code"), [(429, "provider_rate_limited"), (503, "provider_error")]
)
def test_a_streak_of_failures_with_no_success_between_ends_it(status: int, code: str) -> None:
    w = watch()
    for _ in range(FAILURE_STREAK - 1):
        w.answered("anthropic", "POST", status, "try later")
        assert w.verdict() is None
    w.answered("anthropic", "POST", status, "try later")
    verdict = w.verdict()
    assert verdict is not None and verdict.code == code
    assert f"{FAILURE_STREAK} times in a row" in verdict.message
    assert "try later" in verdict.message and "--retry-errors" in verdict.message
    assert len(verdict.failures) == FAILURE_STREAK


def test_a_success_breaks_the_streak() -> None:
    w = watch()
    for _ in range(FAILURE_STREAK - 1):
        w.answered("anthropic", "POST", 500, "oops")
    w.answered("anthropic", "POST", 200)
    for _ in range(FAILURE_STREAK - 1):
        w.answered("anthropic", "POST", 500, "oops")
    assert w.verdict() is None


def test_a_long_streak_with_nothing_in_flight_ends_it() -> None:
    """An agent that backs off for long (or stopped calling) after one failure."""
    clock = Clock()
    w = watch(clock)
    w.answered("anthropic", "POST", 429, "slow down")
    clock.now += STREAK_SEC - 0.1
    assert w.verdict() is None
    w.began()  # the agent's retry is under way: leave it
    clock.now += 1
    assert w.verdict() is None
    w.ended()
    assert w.verdict() is not None


def test_unreachable_after_the_second_attempt() -> None:
    w = watch()
    w.unreachable("anthropic", "connection failed (All connection attempts failed)")
    assert w.verdict() is None
    w.unreachable("anthropic", "connection failed (All connection attempts failed)")
    verdict = w.verdict()
    assert verdict is not None and verdict.code == "provider_unreachable"
    assert "http://127.0.0.1:9" in verdict.message and "ANTHROPIC_BASE_URL" in verdict.message
    assert "connection failed" in verdict.message


def test_no_answer_in_time_ends_it_at_once() -> None:
    w = watch()
    w.answered("anthropic", "POST", 200)
    w.timed_out("anthropic", "POST /anthropic/v1/messages: the answer stalled for 3s")
    verdict = w.verdict()
    assert verdict is not None and verdict.code == "provider_timeout"
    assert "within 3s" in verdict.message and "ENVPOOLS_PROVIDER_TIMEOUT_SEC" in verdict.message


def test_the_verdict_is_latched() -> None:
    w = watch()
    w.answered("anthropic", "POST", 401, "no")
    first = w.verdict()
    w.answered("anthropic", "POST", 200)
    assert w.verdict() is first and w.decided()


def test_final_names_a_last_failure_the_agent_gave_up_on() -> None:
    w = watch()
    w.answered("anthropic", "POST", 200)
    w.answered("anthropic", "POST", 502, "bad gateway")
    assert w.verdict() is None
    verdict = w.verdict(final=True)
    assert verdict is not None and verdict.code == "provider_error"
    assert "502" in verdict.message


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}',
            "rate_limit_error: slow",
        ),
        (
            b'{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}',
            "invalid_request_error: Incorrect API key",
        ),
        (
            b'[{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}]',
            "RESOURCE_EXHAUSTED: Quota",
        ),
        (b'{"error":"overloaded"}', "overloaded"),
        (b'{"detail":"nope"}', "nope"),
        (b"<html>502 Bad Gateway</html>\n", "<html>502 Bad Gateway</html>"),
        (b"x" * 1000, "x" * 299 + "…"),
    ],
)
def test_the_providers_own_message(body: bytes, said: str) -> None:
    assert provider_message(body) == said


def test_agents_check_calls_what_a_rollout_of_each_agent_calls() -> None:
    """The provider, model id (as the API knows it) and API of each built-in agent."""
    from envpools_cli.server.agents import harness_classes
    from envpools_cli.server.agents.probe import ProbeTarget, probe_target

    targets = {name: probe_target(cls, None) for name, cls in harness_classes(None).items()}
    assert targets == {
        "oracle": None,
        "nop": None,
        "claude-code": ProbeTarget("anthropic", "claude-sonnet-4-5", "messages"),
        "codex": ProbeTarget("openai", "gpt-5.2-codex", "responses"),
        "opencode": ProbeTarget("anthropic", "claude-sonnet-4-5", "messages"),
        "gemini-cli": ProbeTarget("gemini", "gemini-2.5-pro", "gemini"),
        "qwen-code": ProbeTarget("dashscope", "qwen3-coder-plus", "chat"),
        "mini-swe-agent": ProbeTarget("openai", "gpt-5-mini", "chat"),
    }
    opencode = harness_classes(None)["opencode"]
    assert probe_target(opencode, "openai/gpt-4.1") == ProbeTarget("openai", "gpt-4.1", "chat")


@pytest.mark.parametrize(
    ("errors", "exit_code"),
    [
        ([("provider_rate_limited", "error")], 7),
        ([("provider_error", "error"), ("provider_timeout", "error")], 7),
        ([("provider_auth", "error")], 5),
        ([("provider_unreachable", "error")], 5),
        ([("provider_error", "error"), ("agent_timeout", "failed")], 5),
        ([("provider_error", "error"), (None, "succeeded")], 7),
        ([(None, "succeeded")], 0),
    ],
)
def test_wait_exits_7_when_what_did_not_succeed_was_transient(
    errors: list[tuple[str | None, str]], exit_code: int
) -> None:
    from envpools_cli.watch import status_exit_code

    docs = [
        {"status": status, "error": {"code": code} if code else None} for code, status in errors
    ]
    assert status_exit_code(docs, None, timed_out=False) == exit_code


def test_the_provider_timeout_is_a_backend_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from envpools_cli.server.settings import ServerSettings, SettingError

    assert ServerSettings.from_env().provider_timeout_sec == 120
    monkeypatch.setenv("ENVPOOLS_PROVIDER_TIMEOUT_SEC", "7.5")
    assert ServerSettings.from_env().provider_timeout_sec == 7.5
    for bad in ("0", "-3", "soon", "nan"):
        monkeypatch.setenv("ENVPOOLS_PROVIDER_TIMEOUT_SEC", bad)
        with pytest.raises(SettingError, match="ENVPOOLS_PROVIDER_TIMEOUT_SEC"):
            ServerSettings.from_env()
