"""Agents run at the concurrency people ask for (issue 22, point 3).

Three tiny tasks x claude-code, codex, opencode x 3 attempts, ``jobs run -n 27``, with the
backend's default settings (only ``ENVPOOLS_SANDBOX``, as every test sets it) against the
scripted provider, on a 2-core machine: every rollout succeeds. The backend admits what
the machine can take (each harness reserves what its CLI needs to start) and queues the
rest; the agents' resident memory is limited, not their address space (opencode's Bun
reserves far more than it uses).

Its cost is opencode's: each of its 9 runs burns ~13 s of CPU to start (Bun, a fresh
home), so the job needs ~150 s of CPU in all, ~90 s of wall time on 2 idle cores at best;
measured 212-264 s here on a machine shared with other test runs (load average 15-30).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from tests.agents.conftest import require_agent
from tests.agents.provider_stub import ProviderStub
from tests.integration.conftest import make_task, start_backend

pytestmark = pytest.mark.sandbox

HARNESSES = ("claude-code", "codex", "opencode")
KEY = "sk-test-load"
CREDENTIALS = {
    "OPENAI_API_KEY": KEY,
    "ANTHROPIC_API_KEY": KEY,
}
#: The scripted tool call every agent makes; the tasks' tests look for its file.
COMMAND = "echo done > /app/done.txt && cat /app/done.txt"
TEST = "if [ -f /app/done.txt ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt"


def tiny_tasks(root: Path, count: int = 3) -> Path:
    for index in range(count):
        make_task(root, f"tiny-{index}", test=TEST)
    return root


@pytest.mark.timeout(900)
def test_27_agents_at_once_on_two_cores_all_succeed(agents_dir: Path, tmp_path: Path) -> None:
    for harness in HARNESSES:
        require_agent(harness)
    stub = ProviderStub(command=COMMAND, expected_key=KEY).start()
    thread = start_backend(tmp_path / "data")
    try:
        _, key = thread.create_key()
        conn: dict[str, Any] = {"backend_base": thread.url, "api_key": key}
        values = {
            **CREDENTIALS,
            "OPENAI_BASE_URL": stub.url + "/v1",
            "ANTHROPIC_BASE_URL": stub.url,
        }
        for name, value in values.items():
            ep.store_credential(
                credential_name=name, credential_type=name, credential_value=value, **conn
            )
        env = {**os.environ, "ENVPOOLS_API_URL": thread.url, "ENVPOOLS_API_KEY": key}
        agents = [arg for harness in HARNESSES for arg in ("-a", harness)]
        started = time.monotonic()
        job = subprocess.run(
            [sys.executable, "-m", "envpools_cli", "jobs", "run", "--tasks",
             str(tiny_tasks(tmp_path / "tasks")), *agents, "-k", "3", "-n", "27", "-o", "json"],
            capture_output=True, text=True, env=env, timeout=840, check=False,
        )  # fmt: skip
        wall = time.monotonic() - started
        assert job.returncode == 0, job.stderr[-4000:]
        result = json.loads(job.stdout)["result"]
        rollouts = ep.list_rollouts(limit=100, **conn)["rollouts"]
        ended = {
            r["rollout_id"]: (r["agent"]["harness"], r["status"], r.get("error")) for r in rollouts
        }
        assert len(ended) == 27, ended
        bad = {k: v for k, v in ended.items() if v[1] != "succeeded"}
        assert not bad, f"{len(bad)} of 27 did not succeed ({wall:.0f}s): {bad}"
        totals = {t["agent"]: t for t in result["totals"]}
        for harness in HARNESSES:
            assert totals[harness]["passes"] == 9, totals[harness]
        reserved = {r["agent"]["harness"]: r["reservation"] for r in rollouts}
        assert reserved["opencode"]["cpus"] >= 4, reserved  # its CLI's needs, not 1
        print(f"27 rollouts at -n 27: {wall:.1f}s wall")
    finally:
        thread.stop()
        stub.stop()
