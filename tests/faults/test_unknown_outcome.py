"""A create whose every response is lost after the server created the rollout.

The client retries with its one Idempotency-Key for a bounded time to learn the outcome;
when it cannot, it says the outcome is unknown and names the key, and the CLI prints the
exact command that retries safely. Running that command creates nothing twice.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.runtime import Runtime
from tests.cli.conftest import CLI
from tests.cli.conftest import cli as cli  # the fixture, shared
from tests.integration.conftest import Backend

from .proxy import Fault, FaultProxy, RequestInfo

REQUEST = {
    "task_ref": {"dataset": "faults", "task_id": "t"},
    "agent": {"harness": "oracle"},
    "pool_id": "p",
    "task_app_id": "",
    "timeouts": {},
    "environment": {"backend": "harbor"},
}


def _lose_every_create(request: RequestInfo) -> Fault | None:
    return Fault.drop_response() if request.matches("POST", r"/rollouts$") else None


def _quick_session() -> ep.HTTPSession:
    """The real retry policy, with a 3 s budget and sleeps cut short."""
    return ep.HTTPSession(
        retry=ep.RetryPolicy(initial_delay=0.05, max_delay=0.2, unknown_outcome_budget=3.0),
        sleep=lambda seconds: time.sleep(min(seconds, 0.2)),
    )


def _rollouts(backend: Backend) -> list[dict[str, Any]]:
    return list(ep.list_rollouts(limit=100, **backend.conn)["rollouts"])


def test_the_client_says_unknown_with_the_key_and_created_once(
    backend: Backend, proxy: FaultProxy
) -> None:
    backend.pool("p")
    proxy.plan = _lose_every_create
    session = _quick_session()
    try:
        with pytest.raises(ep.OutcomeUnknownError) as info:
            ep.create_rollout(
                request=REQUEST, backend_base=proxy.url, api_key=backend.key, session=session
            )
    finally:
        session.close()
    key = info.value.idempotency_key
    lost = proxy.faults("drop_response")
    assert len(lost) > 3, "kept trying past the ordinary retries"
    assert all(r.upstream_status == 201 for r in lost), "each was handled, then lost"
    assert {r.request.headers["idempotency-key"] for r in lost} == {key}
    assert len(_rollouts(backend)) == 1, "one key, one rollout, however many attempts"
    # the same key, once the network is back, learns the outcome
    proxy.plan = lambda request: None
    again = ep.create_rollout(request=REQUEST, idempotency_key=key, **backend.conn)
    assert [r["rollout_id"] for r in _rollouts(backend)] == [again["rollout_id"]]


@pytest.mark.parametrize("output", ["table", "json"])
def test_the_cli_prints_the_key_and_the_command_that_retries_safely(
    backend: Backend, proxy: FaultProxy, cli: CLI, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    backend.pool("p")
    monkeypatch.setenv("ENVPOOLS_API_URL", proxy.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", backend.key)
    monkeypatch.setattr(
        Runtime, "session", lambda self: self.__dict__.setdefault("_quick", _quick_session())
    )
    proxy.plan = _lose_every_create
    args = ["rollouts", "create", "--agent", "oracle", "--task", "faults/t", "--pool", "p"]
    args += ["--json"] if output == "json" else []
    result = cli(*args)

    assert result.code == 7, result.err
    assert result.out == ""
    if output == "json":
        error = json.loads(result.err)["error"]
        assert error["code"] == "outcome_unknown"
        key, hint = error["idempotency_key"], error["hint"]
    else:
        assert "outcome is unknown" in result.err
        hint = result.err
        key = hint.split("--idempotency-key ")[-1].split()[0]
    assert key in hint
    command = hint.split("creating nothing twice: ")[-1].strip().splitlines()[0]
    argv = shlex.split(command)
    assert argv[0] == "envpools" and argv[1:] == [*args, "--idempotency-key", key]
    assert len(_rollouts(backend)) == 1

    proxy.plan = lambda request: None
    retried = cli(*argv[1:])
    assert retried.code == 0, retried.err
    rollouts = _rollouts(backend)
    assert len(rollouts) == 1, "the retry the CLI printed created nothing twice"
    assert rollouts[0]["rollout_id"] in retried.out
