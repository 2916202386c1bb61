"""Agents that cannot work end in ``error`` with a message that says what to do.

The real codex CLI in the sandbox, broken two ways a user meets: the task sets a home for
the agent that does not exist, the CLI itself is a broken file; plus a CLI that passes
``--version`` but dies at once. Each rollout ends in ``error`` (not ``succeeded`` with
reward 0), and ``envpools rollouts wait`` exits 5. (An unreachable provider is the
gateway's to call: ``test_provider_failures.py``.)
"""

from __future__ import annotations

import io
import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.app import run
from envpools_cli.server.serve import BackendThread
from tests.agents.conftest import require_agent
from tests.integration.conftest import EXAMPLE, fast_session, local_task, make_task, start_backend

# The real agent CLIs: opencode alone needs ~10 s of CPU to start, minutes on a busy machine.
pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(360)]


@dataclass
class Local:
    thread: BackendThread
    conn: dict[str, Any]
    root: Path

    def store(self, name: str, value: str) -> None:
        ep.store_credential(
            credential_name=name, credential_type=name, credential_value=value, **self.conn
        )

    def pool(self, task: Path) -> None:
        body = {
            "pool_id": "p",
            "pool_type": "sandbox",
            "tasks": [local_task("t", task).model_dump()],
        }
        ep.create_pool(request=body, **self.conn)

    def rollout(self, harness: str = "codex") -> dict[str, Any]:
        request = {
            "task_ref": {"dataset": "d", "task_id": "t"},
            "agent": {"harness": harness},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {"agent_sec": 120},
        }
        rid = ep.create_rollout(request=request, **self.conn)["rollout_id"]
        return ep.RolloutHandle(rid, **self.conn).wait(timeout=180)


@pytest.fixture
def local(agents_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    thread = start_backend(tmp_path / "data")
    _, key = thread.create_key()
    session = fast_session()
    monkeypatch.setenv("ENVPOOLS_API_URL", thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", key)
    yield Local(thread, {"backend_base": thread.url, "api_key": key, "session": session}, tmp_path)
    session.close()
    thread.stop()


def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_agent_failed(done: dict[str, Any], *needles: str) -> str:
    assert done["status"] == "error", done
    error = done["error"]
    assert error["code"] == "agent_failed", error
    message = str(error["message"])
    assert "what to do:" in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def test_missing_home_set_by_the_task_ends_in_agent_failed(
    local: Local, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_agent("codex")
    local.store("OPENAI_API_KEY", "sk-unused-0123456789")
    task = make_task(
        local.root,
        "home",
        dockerfile="FROM python:3.12-slim\nENV CODEX_HOME=/root/.codex\nWORKDIR /app\n"
        "COPY repo/ /app/\n",
    )
    local.pool(task)
    done = local.rollout()
    message = assert_agent_failed(done, "CODEX_HOME", "environment/Dockerfile")
    assert done["error"]["stderr_tail"], "the CLI's own last lines are kept"
    assert "codex exited with code" in message

    code, _, _ = cli(capsys, monkeypatch, "rollouts", "wait", done["rollout_id"])
    assert code == 5


def test_broken_binary_is_reported_by_capabilities_and_the_rollout(
    local: Local, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install whose binary is not a program: not available, and says to reinstall."""
    broken = local.root / "agents"
    binary = broken / "codex" / "0.0.1" / "node_modules" / ".bin" / "codex"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\x7fELF\x02\x01\x01 not really a program")
    binary.chmod(0o755)
    record = {"codex": {"package": "@openai/codex", "version": "0.0.1", "path": "codex/0.0.1"}}
    (broken / "installed.json").write_text(json.dumps(record))
    monkeypatch.setenv("ENVPOOLS_AGENTS_DIR", str(broken))
    thread = start_backend(local.root / "data-broken")
    try:
        _, key = thread.create_key()
        conn = {"backend_base": thread.url, "api_key": key, "session": local.conn["session"]}
        agents = {a["name"]: a for a in ep.get_capabilities(**conn)["agents"]}
        assert agents["codex"]["available"] is False
        assert "envpools agents install codex --force" in agents["codex"]["reason"]
        ep.store_credential(
            credential_name="OPENAI_API_KEY",
            credential_type="OPENAI_API_KEY",
            credential_value="sk-unused-0123456789",
            **conn,
        )
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [local_task("t", EXAMPLE).model_dump()],
            },
            **conn,
        )
        request = {
            "task_ref": {"dataset": "d", "task_id": "t"},
            "agent": {"harness": "codex"},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {},
        }
        rid = ep.create_rollout(request=request, **conn)["rollout_id"]
        done = ep.RolloutHandle(rid, **conn).wait(timeout=60)
        assert done["status"] == "error"
        assert done["error"]["code"] == "harness_unavailable"
        assert "envpools agents install codex --force" in done["error"]["message"]
        monkeypatch.setenv("ENVPOOLS_API_URL", thread.url)
        monkeypatch.setenv("ENVPOOLS_API_KEY", key)
        code, _, _ = cli(capsys, monkeypatch, "rollouts", "wait", rid)
        assert code == 5
    finally:
        thread.stop()


def test_cli_that_dies_at_start_keeps_its_last_lines(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers --version, then fails like a CLI whose config is broken: not a reward 0."""
    tools = tmp_path / "tools"
    tools.mkdir()
    script = tools / "claude"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "9.9.9 (Claude Code)"; exit 0; fi\n'
        "echo 'loading settings' >&2\n"
        "echo 'Error: settings.json is not valid JSON at line 3' >&2\n"
        "exit 2\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("ENVPOOLS_TOOL_PATH", str(tools))
    monkeypatch.setenv("ENVPOOLS_AGENTS_DIR", str(tmp_path / "no-agents"))
    thread = start_backend(tmp_path / "data-tool")
    try:
        _, key = thread.create_key()
        conn = {"backend_base": thread.url, "api_key": key, "session": local.conn["session"]}
        ep.store_credential(
            credential_name="ANTHROPIC_API_KEY",
            credential_type="ANTHROPIC_API_KEY",
            credential_value="sk-ant-unused-0123456789",
            **conn,
        )
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [local_task("t", EXAMPLE).model_dump()],
            },
            **conn,
        )
        request = {
            "task_ref": {"dataset": "d", "task_id": "t"},
            "agent": {"harness": "claude"},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {},
        }
        rid = ep.create_rollout(request=request, **conn)["rollout_id"]
        done = ep.RolloutHandle(rid, **conn).wait(timeout=60)
    finally:
        thread.stop()
    message = assert_agent_failed(done, "claude exited with code 2", "settings.json is not valid")
    assert done["agent"]["harness"] == "claude-code", "--agent claude is claude-code"
    assert "agent/claude-code.txt" in message
