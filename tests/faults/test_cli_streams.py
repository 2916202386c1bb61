"""``envpools rollouts tail`` through a hundred cut connections, and against no backend at all.

The CLI does not reconnect by itself: it follows the client's ``ReconnectPolicy``, so what
``test_streams.py`` holds for the client holds here for what the CLI prints.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.runtime import Runtime
from tests.cli.conftest import CLI
from tests.cli.conftest import cli as cli  # the fixture, shared
from tests.integration.conftest import Backend, fast_session, local_task

from .conftest import assert_exact_sequence, chatty_task, rollout_request, stored_events
from .proxy import Fault, FaultProxy, randomly

CUTS = 100


@pytest.fixture
def through(proxy: FaultProxy, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> FaultProxy:
    """The CLI talks to the backend through the proxy, with backoff sleeps shortened."""
    monkeypatch.setenv("ENVPOOLS_API_URL", proxy.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", backend.key)
    monkeypatch.setattr(
        Runtime, "session", lambda self: self.__dict__.setdefault("_fast", fast_session())
    )
    return proxy


def test_tail_through_a_hundred_cuts_prints_every_event_once(
    backend: Backend, through: FaultProxy, cli: CLI, tmp_path: Path
) -> None:
    backend.pool("p", local_task("chatty", chatty_task(tmp_path, "chatty", 20_000)))

    def cut(rng: random.Random) -> Fault:
        return Fault.cut(rng.randint(1, 30_000), reset=rng.random() < 0.5)

    rollout = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)
    through.plan = randomly(1.0, cut, seed=7, method="GET", path=r"/events$", limit=CUTS)
    result = cli("rollouts", "tail", rollout["rollout_id"], "-o", "jsonl", "--exit-status")

    assert result.code == 0, result.err[-2000:]
    assert len(through.faults("cut")) == CUTS
    lines = [json.loads(line) for line in result.lines()]
    assert lines[-1]["event"] == "end" and lines[-1]["data"]["reason"] == "terminal"
    got = lines[:-1]
    assert_exact_sequence(got, stored_events(backend.conn, rollout["rollout_id"]))
    assert result.err.count("reconnecting") == CUTS, "each cut is said on stderr, once"


def test_tail_resumes_a_clean_early_close(
    backend: Backend, through: FaultProxy, cli: CLI, tmp_path: Path
) -> None:
    backend.pool("p", local_task("chatty", chatty_task(tmp_path, "chatty", 2_000)))
    rollout = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)
    backend.wait(rollout["rollout_id"])  # finished: the case that lost events silently
    through.plan = randomly(
        1.0,
        lambda rng: Fault.clean_close(rng.randint(0, 20_000)),
        seed=5,
        method="GET",
        path=r"/events$",
        limit=10,
    )
    result = cli("rollouts", "tail", rollout["rollout_id"], "-o", "jsonl")
    assert result.code == 0, result.err[-2000:]
    assert through.faults("clean_close")
    got = [json.loads(line) for line in result.lines()][:-1]
    assert_exact_sequence(got, stored_events(backend.conn, rollout["rollout_id"]))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("output", ["table", "jsonl"])
def test_tail_with_the_backend_down_fails_in_seconds_with_a_hint(output: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVPOOLS_", "SYNTH_"))}
    env.update(
        ENVPOOLS_API_URL=f"http://127.0.0.1:{_closed_port()}",
        ENVPOOLS_API_KEY="ep_test_key_not_used",
        ENVPOOLS_KEYRING="file",
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "envpools_cli", "rollouts", "tail", "ro_missing", "-o", output],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 7, result.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert "envpools local up" in result.stderr
    assert "Traceback" not in result.stderr
    if output == "jsonl":
        assert result.stdout == ""
        error = json.loads(result.stderr)  # one JSON object, nothing before it
        assert error["error"]["code"] == "network_error"
    else:
        # the id lookup (a prefix) or the stream: whichever asks first names the address
        assert "http://127.0.0.1:" in result.stderr.splitlines()[0], result.stderr
