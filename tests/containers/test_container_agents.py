"""The real codex and claude CLIs in the container driver, against the stub.

The image (the bundled example's, on the Debian base) has no Node.js and no agent: both
come from the installed tool tree, mounted read-only. The agent reaches its provider
only through the egress gateway, and the key never enters the container.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.conftest import agents_dir, installed_cli_dir, require_agent
from tests.agents.test_real_agents import CASES, SCANNED, SEEN, agent_data, run_agent
from tests.helpers.containers import container_settings

__all__ = ["agents_dir", "installed_cli_dir"]  # fixtures shared with tests/agents


# codex (a Node.js wrapper around a native binary) and claude (Node.js alone) cover what a
# container needs from the tool tree; opencode runs the same way, in tests/agents (bwrap).
@pytest.mark.parametrize("harness", ["codex", "claude-code"])
def test_real_agent_runs_in_the_container_from_the_tool_tree(
    harness: str, agents_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_agent(harness)
    settings = container_settings(monkeypatch)
    for run in run_agent(tmp_path, CASES[harness], **settings):
        assert run.rollout["status"] == "succeeded", run.rollout
        assert run.rollout["reward_primary"] == 1.0, "the scripted tool call fixed the task"
        data = agent_data(run)
        assert SCANNED in str(data), "the scan inside the container ran"
        assert SEEN not in run.visible, "the provider key was visible inside the container"
        assert run.stub.keys_seen == {f"sk-test-{run.marker}"}
        assert run.marker not in run.visible, "the provider key leaked"
