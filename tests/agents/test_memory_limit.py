"""Agent CLIs on JIT runtimes run under a tight memory limit: it bounds resident memory.

Node and Bun reserve far more address space than they use: under the data-size rlimit
the sandbox used to set, ``claude --version`` aborted below ~1 GB, and opencode died with
``MemoryExhaustion`` at 2 GB while using ~600 MB. With memory bounded as resident memory
(a cgroup per sandbox), claude-code runs a whole session under 512 MB (it peaks at ~140
MB), through the real backend against the scripted provider. (opencode at the default
limit: ``test_load.py``.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from tests.agents.conftest import require_agent
from tests.agents.provider_stub import ProviderStub
from tests.integration.conftest import make_task, start_backend

pytestmark = pytest.mark.sandbox

KEY = "sk-test-memory"
TEST = "if [ -f /app/done.txt ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt"


@pytest.mark.timeout(240)
def test_claude_code_runs_under_512_mb(agents_dir: Path, tmp_path: Path) -> None:
    require_agent("claude-code")
    stub = ProviderStub(command="echo done > /app/done.txt", expected_key=KEY).start()
    thread = start_backend(tmp_path / "data")
    try:
        _, key = thread.create_key()
        conn: dict[str, Any] = {"backend_base": thread.url, "api_key": key}
        for name, value in (("ANTHROPIC_API_KEY", KEY), ("ANTHROPIC_BASE_URL", stub.url)):
            ep.store_credential(
                credential_name=name, credential_type=name, credential_value=value, **conn
            )
        task = make_task(
            tmp_path / "tasks", "tight", test=TEST, toml="[environment]\nmemory_mb = 512\n"
        )
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [ep.PoolTask.from_local("tight", str(task)).model_dump()],
            },
            **conn,
        )
        rollout = ep.create_rollout(
            request={
                "task_ref": {"dataset": "t", "task_id": "tight"},
                "agent": {"harness": "claude-code"},
                "pool_id": "p",
                "task_app_id": "",
                "timeouts": {},
            },
            **conn,
        )
        deadline = time.monotonic() + 200
        while (done := ep.get_rollout(rollout["rollout_id"], **conn))["status"] not in (
            ep.TERMINAL_STATUSES
        ):
            assert time.monotonic() < deadline, done["status"]
            time.sleep(0.5)
        assert done["limits"]["memory_mb"] == 512
        assert done["status"] == "succeeded", (done["status"], done.get("error"))
        assert done["reward_primary"] == 1.0
        assert stub.turns()[-1] == "final", stub.turns()
    finally:
        thread.stop()
        stub.stop()
