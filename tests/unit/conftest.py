"""MockTransport plumbing for client unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from envpools_cli.client import HTTPSession, RetryPolicy, api, use_session

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """A MockTransport handler that records every request it answers."""

    handler: Handler = field(default=lambda request: httpx.Response(200, json={}))
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    now: float = 0.0
    """A virtual clock that only the recorded sleeps move."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        content = self.requests[index].content
        return json.loads(content) if content else None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.setenv("SYNTH_API_KEY", "sk-test-123")
    monkeypatch.setenv("SYNTH_BACKEND_URL", "http://backend.test")
    api.clear_capabilities_cache()
    rec = Recorder()
    session = HTTPSession(
        transport=httpx.MockTransport(rec),
        retry=RetryPolicy(max_retries=2),
        sleep=rec.sleep,
        rand=lambda: 0.0,
        clock=rec.clock,
    )
    with use_session(session):
        yield rec
    session.close()
