"""A provider that fails ends the rollout in seconds, with the provider's code and words.

The real claude-code, codex and opencode CLIs, each against a provider that is
unreachable (a closed port), refuses the key (401), rate-limits every call (429), fails
every call (500), or never answers (hang), with an agent timeout of 600 s: each rollout
ends in ``error`` with the gateway's code (``provider_unreachable``, ``provider_auth``,
``provider_rate_limited``, ``provider_error``, ``provider_timeout``), the provider's own
message, and what to do, within 15 s of the agent starting; ``rollouts wait`` exits 7 for
the transient ones and 5 for the others. A single 429 that the CLI retries past is not a
failure: claude-code's rollout succeeds (codex does not retry a 429 at all, so its one 429
ends the rollout with the transient code).

All 17 rollouts run at once in one backend (an organisation per provider, since the base
URL is a stored credential), so the whole module costs about one slow rollout.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.app import run
from envpools_cli.server.serve import BackendThread
from tests.agents.conftest import _problems
from tests.agents.provider_stub import (
    FAILURE_MESSAGES,
    FIX_COMMAND,
    ProviderStub,
    closed_port,
)
from tests.integration.conftest import EXAMPLE, fast_session, local_task, start_backend

# The module's rollouts run in its first test's setup: its time covers them all.
pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(420)]

AGENTS = ("claude-code", "codex", "opencode")
PROVIDER_TIMEOUT = 3.0
ENDS_WITHIN = 15.0
EXPECTED = {
    "unreachable": ("provider_unreachable", "connection failed", 5),
    "401": ("provider_auth", FAILURE_MESSAGES[401][1], 5),
    "429": ("provider_rate_limited", FAILURE_MESSAGES[429][1], 7),
    "500": ("provider_error", FAILURE_MESSAGES[500][1], 7),
    "hang": ("provider_timeout", f"within {PROVIDER_TIMEOUT:g}s", 7),
}
"""mode -> (code, what the message must hold, exit code of ``rollouts wait``)."""
ONCE = ("claude-code", "codex")
"""Agents that also meet a single 429 and then a provider that answers. (Not opencode: it
retries a 429 as claude-code does, and its start is the slowest of the three, ~10 s of
CPU: one rollout fewer of it keeps this module's cost down.)"""


@dataclass
class Org:
    name: str
    conn: dict[str, Any]
    key: str
    stub: ProviderStub | None
    rollouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """harness -> the rollout as it ended."""


@dataclass
class Runs:
    thread: BackendThread
    orgs: dict[str, Org]
    events: dict[str, list[dict[str, Any]]]


def _org(thread: BackendThread, name: str, url: str, stub: ProviderStub | None) -> Org:
    _, key = thread.create_key(name=name)
    conn: dict[str, Any] = {"backend_base": thread.url, "api_key": key, "session": fast_session()}
    for prefix in ("OPENAI", "ANTHROPIC"):
        suffix = "/v1" if prefix == "OPENAI" else ""
        for credential, value in (
            (f"{prefix}_API_KEY", f"sk-test-{name}-0123456789"),
            (f"{prefix}_BASE_URL", url + suffix),
        ):
            ep.store_credential(
                credential_name=credential,
                credential_type=credential,
                credential_value=value,
                **conn,
            )
    ep.create_pool(
        request={
            "pool_id": "p",
            "pool_type": "sandbox",
            "concurrency": len(AGENTS),
            "tasks": [local_task("fix", EXAMPLE).model_dump()],
        },
        **conn,
    )
    return Org(name, conn, key, stub)


def _create(org: Org, harness: str) -> str:
    request = {
        "task_ref": {"dataset": "d", "task_id": "fix"},
        "agent": {"harness": harness},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {"agent_sec": 600},
    }
    return str(ep.create_rollout(request=request, **org.conn)["rollout_id"])


@pytest.fixture(scope="module")
def runs(installed_cli_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("provider-failures")
    stubs: list[ProviderStub] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVPOOLS_KEYRING", "file")
        patch.setenv("HOME", str(root / "home"))
        thread = start_backend(
            root / "data",
            sandbox="bwrap",
            agents_dir=installed_cli_dir,
            provider_timeout_sec=PROVIDER_TIMEOUT,
        )
        try:
            orgs: dict[str, Org] = {}
            for mode in EXPECTED:
                if mode == "unreachable":
                    orgs[mode] = _org(thread, mode, f"http://127.0.0.1:{closed_port()}", None)
                    continue
                stub = ProviderStub(command=FIX_COMMAND, failure=mode).start()
                stubs.append(stub)
                orgs[mode] = _org(thread, mode, stub.url, stub)
            for harness in ONCE:  # one 429, then answers: a stub (and org) per agent
                stub = ProviderStub(command=FIX_COMMAND, failure="429", fail_first=1).start()
                stubs.append(stub)
                orgs[f"once-{harness}"] = _org(thread, f"once-{harness}", stub.url, stub)
            wanted = [
                (org, harness)
                for org in orgs.values()
                for harness in AGENTS
                if harness not in _problems
                and (not org.name.startswith("once-") or org.name == f"once-{harness}")
            ]
            ids = {(org.name, harness): _create(org, harness) for org, harness in wanted}
            events: dict[str, list[dict[str, Any]]] = {}

            def follow(org: Org, harness: str) -> None:
                rid = ids[(org.name, harness)]
                org.rollouts[harness] = ep.RolloutHandle(rid, **org.conn).wait(timeout=400)
                events[rid] = list(ep.stream_rollout_events(rid, **org.conn))

            waiters = [threading.Thread(target=follow, args=pair) for pair in wanted]
            for waiter in waiters:
                waiter.start()
            for waiter in waiters:
                waiter.join()
            if report := os.environ.get("PROVIDER_FAILURES_REPORT"):  # for a person looking
                Path(report).write_text(
                    json.dumps(
                        {
                            f"{o.name}/{h}": {
                                "status": d["status"],
                                "error": d.get("error"),
                                "seconds": _seconds(d) if d.get("started_at") else None,
                            }
                            for o in orgs.values()
                            for h, d in o.rollouts.items()
                        },
                        indent=1,
                    )
                )
            yield Runs(thread, orgs, events)
        finally:
            thread.stop()
            for stub in stubs:
                stub.stop()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _seconds(doc: dict[str, Any]) -> float:
    return (_when(doc["finished_at"]) - _when(doc["started_at"])).total_seconds()


def _ran(runs: Runs, org: str, harness: str) -> dict[str, Any]:
    if harness in _problems:
        pytest.skip(f"{harness} could not be installed: {_problems[harness]}")
    return runs.orgs[org].rollouts[harness]


def _wait_exit(
    runs: Runs,
    org: Org,
    rid: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    monkeypatch.setenv("ENVPOOLS_API_URL", runs.thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", org.key)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    capsys.readouterr()
    code = run(["rollouts", "wait", rid, "--timeout", "30"])
    capsys.readouterr()
    return code


@pytest.mark.parametrize("mode", list(EXPECTED))
@pytest.mark.parametrize("harness", AGENTS)
def test_a_failing_provider_ends_the_rollout_in_seconds(
    runs: Runs,
    harness: str,
    mode: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = _ran(runs, mode, harness)
    code, said, exit_code = EXPECTED[mode]
    assert done["status"] == "error", done
    error = done["error"]
    assert error["code"] == code, error
    message = str(error["message"])
    assert said in message, message
    assert "what to do:" in message, message
    assert done.get("reward_primary") is None, "no verifier scores an agent the provider failed"
    # From the agent's first call the provider failed to the rollout's end: what the
    # gateway decides. (From "running" it also holds the CLI's start, which a machine
    # shared with other test runs can stretch well beyond that: reported, not judged.)
    failures = error["provider_failures"]
    assert failures and all(f["code"] == code for f in failures[-1:]), failures
    first = min(_when(f["at"]) for f in failures)
    after = (_when(done["finished_at"]) - first).total_seconds()
    whole = _seconds(done)
    assert after <= ENDS_WITHIN, (
        f"{harness} against {mode}: ended {after:.1f}s after the first failed call "
        f"({whole:.1f}s after it started running)"
    )
    assert "sk-test-" not in json.dumps(done), "the key is not in the error"

    org = runs.orgs[mode]
    events = runs.events[done["rollout_id"]]
    notes = [
        e["data"] for e in events if e["event"] == "lifecycle" and "provider_failures" in e["data"]
    ]
    assert notes and notes[-1]["provider_failures"], events[-5:]
    if org.stub is not None and mode != "hang":
        assert org.stub.failed >= 1, "the provider was reached and failed the call"
    assert _wait_exit(runs, org, done["rollout_id"], capsys, monkeypatch) == exit_code


def test_one_429_the_agent_retries_past_is_no_failure(runs: Runs) -> None:
    done = _ran(runs, "once-claude-code", "claude-code")
    stub = runs.orgs["once-claude-code"].stub
    assert stub is not None and stub.failed == 1, "the first call got its 429"
    assert done["status"] == "succeeded", done
    assert done["reward_primary"] == 1.0
    # claude prints its retries (api_retry): an event says why
    events = runs.events[done["rollout_id"]]
    retries = [
        e["data"] for e in events if e["event"] == "agent" and e["data"].get("kind") == "retry"
    ]
    assert retries and retries[0]["error_status"] == 429, retries
    assert "429" in retries[0]["text"]


CHECKED = ("claude-code", "codex", "opencode", "mini-swe-agent")
"""The agents whose providers (Anthropic, OpenAI) each organisation here has stored."""


@pytest.mark.parametrize("org_name", [*EXPECTED, "once-codex"])
def test_agents_check_gives_each_verdict_in_seconds(runs: Runs, org_name: str) -> None:
    """One real call per agent through the stored key and base URL, all at once, < 10 s.

    Runs after the rollouts: the once-* provider has had its one 429 and answers now."""
    org = runs.orgs[org_name]
    before = len(org.stub.requests) if org.stub is not None else 0
    started = time.monotonic()
    rows = ep.check_agents(**org.conn)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"agents check took {elapsed:.1f}s"
    verdicts = {r["agent"]: r for r in rows}
    assert {"oracle", "nop"} & set(verdicts) == set(), "agents that call no provider"
    for harness in CHECKED:
        row = verdicts[harness]
        if org_name.startswith("once-"):
            assert row["verdict"] == "ok" and row["ok"] is True, row
            continue
        code, said, _ = EXPECTED[org_name]
        assert row["verdict"] == code and row["ok"] is False, row
        assert said in row["message"] and "what to do:" in row["message"], row
        assert "sk-test-" not in json.dumps(row), "the key is not in the verdict"
    for harness in ("gemini-cli", "qwen-code"):  # no GEMINI_* / DASHSCOPE_* stored
        assert verdicts[harness]["verdict"] == "credentials_missing", verdicts[harness]
    if org.stub is not None and org_name != "hang":
        made = org.stub.requests[before:]
        models = sorted(str(r.get("body", {}).get("model")) for r in made)
        assert models == sorted(["claude-sonnet-4-5"] * 2 + ["gpt-5.2-codex", "gpt-5-mini"]), made


def test_agents_check_on_the_command_line(
    runs: Runs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVPOOLS_API_URL", runs.thread.url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setenv("ENVPOOLS_API_KEY", runs.orgs["401"].key)
    capsys.readouterr()
    assert run(["agents", "check", "claude", "-o", "json"]) == 5
    (row,) = json.loads(capsys.readouterr().out)
    assert row["agent"] == "claude-code" and row["verdict"] == "provider_auth", row
    monkeypatch.setenv("ENVPOOLS_API_KEY", runs.orgs["500"].key)
    assert run(["agents", "check", "codex"]) == 7, "a 5xx is transient"
    monkeypatch.setenv("ENVPOOLS_API_KEY", runs.orgs["once-codex"].key)
    assert run(["agents", "check", "codex"]) == 0
    out = capsys.readouterr().out
    assert "codex" in out and "ok" in out and "gpt-5.2-codex" in out, out
    assert run(["agents", "check", "no-such-agent"]) == 6


def test_codex_does_not_retry_a_429_so_its_one_429_is_transient(runs: Runs) -> None:
    """codex (0.171) retries 5xx and lost connections but not a 429 ("exceeded retry
    limit, last status: 429"): it gives up on the first, and the rollout ends with the
    provider's transient code (run again by `jobs resume --retry-errors`), not as the
    agent's failure."""
    done = _ran(runs, "once-codex", "codex")
    stub = runs.orgs["once-codex"].stub
    assert stub is not None and stub.failed == 1
    assert done["status"] == "error", done
    assert done["error"]["code"] == "provider_rate_limited", done["error"]
    assert FAILURE_MESSAGES[429][1] in done["error"]["message"]
