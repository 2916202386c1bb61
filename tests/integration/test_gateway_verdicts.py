"""The egress gateway's verdict on what a provider does to the calls it forwards.

No agent here: requests through a real gateway (loopback TCP) to the scripted provider
in each failure mode, and what the gateway's ``watch`` makes of them: the code, the
provider's words, and that a retried 429 is nothing. (The real CLIs against the same
provider: ``tests/agents/test_provider_failures.py``.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from envpools_cli.server.sandbox.egress import EgressGateway, Route, open_gateway
from tests.agents.provider_stub import FAILURE_MESSAGES, ProviderStub, closed_port

KEY = "sk-real-key-for-verdicts-0123456789"


def gateway_to(url: str, timeout: float = 2.0) -> EgressGateway:
    return open_gateway([Route("anthropic", url, KEY)], isolated=False, provider_timeout=timeout)


def call(gw: EgressGateway, stream: bool = False) -> httpx.Response:
    body = {"model": "m", "max_tokens": 5, "stream": stream, "messages": []}
    headers = {"x-api-key": gw.placeholder}
    return httpx.post(
        gw.url_for("anthropic") + "/v1/messages", json=body, headers=headers, timeout=30
    )


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(command="true") as running:
        yield running


@pytest.mark.parametrize(
    ("mode", "code", "calls"),
    [
        ("401", "provider_auth", 1),
        ("429", "provider_rate_limited", 3),
        ("500", "provider_error", 3),
    ],
)
def test_answers_that_end_a_rollout(stub: ProviderStub, mode: str, code: str, calls: int) -> None:
    stub.failure = mode
    with gateway_to(stub.url) as gw:
        for n in range(calls):
            assert gw.watch.verdict() is None, f"decided after {n} call(s)"
            answer = call(gw)
            assert answer.status_code == int(mode)
        verdict = gw.watch.verdict()
    assert verdict is not None and verdict.code == code
    assert FAILURE_MESSAGES[int(mode)][1] in verdict.message
    assert KEY not in verdict.message and "ANTHROPIC_BASE_URL" in verdict.message


def test_one_429_then_answers_is_nothing(stub: ProviderStub) -> None:
    stub.failure, stub.fail_first = "429", 1
    with gateway_to(stub.url) as gw:
        assert call(gw).status_code == 429
        assert call(gw).status_code == 200
        assert gw.watch.verdict() is None and gw.watch.verdict(final=True) is None


def test_an_unreachable_provider_at_the_second_try() -> None:
    with gateway_to(f"http://127.0.0.1:{closed_port()}") as gw:
        assert call(gw).status_code == 502
        assert gw.watch.verdict() is None
        assert call(gw).status_code == 502
        verdict = gw.watch.verdict()
    assert verdict is not None and verdict.code == "provider_unreachable"
    assert "connection failed" in verdict.message


@pytest.mark.parametrize(("mode", "stream"), [("hang", False), ("stall", True)])
def test_no_answer_within_the_provider_timeout(stub: ProviderStub, mode: str, stream: bool) -> None:
    """No headers (hang), or a stream that starts and then says nothing (stall)."""
    stub.failure = mode
    with gateway_to(stub.url, timeout=1.0) as gw:
        started = time.monotonic()
        try:
            answer = call(gw, stream=stream)
            assert answer.status_code == (504 if mode == "hang" else 200)
        except httpx.RemoteProtocolError:
            assert mode == "stall", "a stream cut short"
        elapsed = time.monotonic() - started
        verdict = gw.watch.verdict()
    assert 0.9 <= elapsed < 10, elapsed
    assert verdict is not None and verdict.code == "provider_timeout", verdict
    assert ("no response headers" if mode == "hang" else "stalled") in verdict.message
