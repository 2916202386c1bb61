"""CLIs installed outside envpools: ``ENVPOOLS_TOOL_PATH`` with npm's symlinked ``.bin``.

npm's ``node_modules/.bin/claude`` is a relative symlink into the package folder: binding
only ``.bin`` into the sandbox leaves it dangling. The backend binds the package folder it
points into as well, and decides availability by running ``--version`` in the sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.agents.installs import installed_agents
from tests.agents.conftest import require_agent
from tests.integration.conftest import fast_session, start_backend

# The real agent CLIs: opencode alone needs ~10 s of CPU to start, minutes on a busy machine.
pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(360)]


def test_symlinked_bins_on_the_tool_path_run_in_the_sandbox(
    agents_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for harness in ("codex", "claude-code"):
        require_agent(harness)
    installs = installed_agents(agents_dir)
    bins = [installs[h].root / "node_modules" / ".bin" for h in ("codex", "claude-code")]
    assert all((b / name).is_symlink() for b, name in zip(bins, ("codex", "claude"), strict=True))
    monkeypatch.setenv("ENVPOOLS_TOOL_PATH", ":".join(map(str, bins)))
    monkeypatch.setenv("ENVPOOLS_AGENTS_DIR", str(tmp_path / "nothing-installed-here"))
    thread = start_backend(tmp_path / "data")
    session = fast_session()
    try:
        _, key = thread.create_key()
        caps = ep.get_capabilities(backend_base=thread.url, api_key=key, session=session)
    finally:
        session.close()
        thread.stop()
    agents = {a["name"]: a for a in caps["agents"]}
    for harness, version in (("codex", "codex-cli 0.171.0"), ("claude-code", "2.1.332")):
        assert agents[harness]["available"] is True, agents[harness]
        assert agents[harness]["source"] == "ENVPOOLS_TOOL_PATH"
        assert version in agents[harness]["version"]
    assert agents["opencode"]["available"] is False
    assert "envpools agents install opencode" in agents["opencode"]["reason"]
