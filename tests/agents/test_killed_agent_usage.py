"""Tokens are counted from the gateway when the agent CLI dies before reporting them.

Issue 22: an opencode run that crashed mid-run showed 0 tokens although it had made two
provider requests. The scripted tool call here kills the agent CLI itself (inside the
sandbox's pid namespace, where only the rollout's own processes are), after the provider
answered its first request and before the CLI printed any usage of its own: the rollout's
usage must still be every token the provider handed out, as the egress gateway recorded
them (``usage_source: gateway``).
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

KEY = "sk-test-killed"
#: The CLI's own process: codex's native binary, opencode's Bun binary. opencode passes
#: too (its usage comes only with each step's end, which never comes), but takes ~15 s
#: of CPU to start: CI runs codex only.
PROCESS = {"codex": "codex", "opencode": "opencode"}
CREDENTIALS = {
    "codex": {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "/v1"},
    "opencode": {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": ""},
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("harness", ["codex"])
def test_an_agent_killed_mid_run_still_has_its_tokens_counted(
    harness: str, agents_dir: Path, tmp_path: Path
) -> None:
    require_agent(harness)
    kill = f"pkill -KILL -x {PROCESS[harness]}; sleep 30"
    stub = ProviderStub(command=kill, expected_key=KEY).start()
    thread = start_backend(tmp_path / "data")
    try:
        _, key = thread.create_key()
        conn: dict[str, Any] = {"backend_base": thread.url, "api_key": key}
        for name, value in CREDENTIALS[harness].items():
            value = value if name.endswith("KEY") else stub.url + value
            ep.store_credential(
                credential_name=name, credential_type=name, credential_value=value, **conn
            )
        task = make_task(tmp_path / "tasks", "killed")
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [ep.PoolTask.from_local("killed", str(task)).model_dump()],
            },
            **conn,
        )
        rollout = ep.create_rollout(
            request={
                "task_ref": {"dataset": "t", "task_id": "killed"},
                "agent": {"harness": harness},
                "pool_id": "p",
                "task_app_id": "",
                "timeouts": {"agent_sec": 240},
            },
            **conn,
        )
        deadline = time.monotonic() + 280
        while (done := ep.get_rollout(rollout["rollout_id"], **conn))["status"] not in (
            ep.TERMINAL_STATUSES
        ):
            assert time.monotonic() < deadline, done["status"]
            time.sleep(0.5)
        # The CLI died at its first tool call: it never got to a final answer.
        assert "final" not in stub.turns(), stub.turns()
        assert "tool_call" in stub.turns(), stub.turns()
        assert done["agent_exit_code"] != 0, done
        usage = ep.get_rollout_usage(rollout["rollout_id"], **conn)
        expected = stub.totals()
        assert expected.prompt > 0
        assert usage["usage_source"] == "gateway", usage
        assert (usage["llm_input_tokens"], usage["llm_cache_tokens"]) == (
            expected.prompt,
            expected.cached,
        ), usage
        assert usage["llm_output_tokens"] == expected.output, usage
    finally:
        thread.stop()
        stub.stop()
