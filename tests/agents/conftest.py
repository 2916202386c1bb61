"""The real agent CLIs, installed once per machine (or CI run) and shared by every test.

They are installed by ``envpools agents install`` (the same code a user runs) into
``ENVPOOLS_TEST_AGENTS_DIR`` (default ``.cache/agents`` in the repository), and reused
while the pinned versions match. Tests skip with the reason only when they cannot be had:
no bubblewrap, no npm (or no python3-venv for mini-swe-agent), or the registry unreachable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli.server.agents.installs import (
    AGENT_PACKAGES,
    AgentInstallError,
    install_agents,
    installed_agents,
)
from envpools_cli.server.sandbox.drivers import make_driver

ROOT = Path(__file__).resolve().parents[2]
_problems: dict[str, str] = {}


def _agents_dir() -> Path:
    return Path(os.environ.get("ENVPOOLS_TEST_AGENTS_DIR") or ROOT / ".cache" / "agents")


_SHARED = _agents_dir()  # read before the autouse fixture drops ENVPOOLS_* variables


@pytest.fixture(scope="session")
def installed_cli_dir() -> Path:
    """The agents dir with the pinned CLIs, installed on first use."""
    try:
        make_driver("bwrap")
    except RuntimeError as exc:
        pytest.skip(f"the agent tests run the CLIs in bubblewrap: {exc}")
    present = installed_agents(_SHARED)
    missing = [
        harness
        for harness, package in AGENT_PACKAGES.items()
        if harness not in _problems
        and (harness not in present or present[harness].version != package.version)
    ]
    for harness, result in install_agents(_SHARED, missing).items():
        if isinstance(result, AgentInstallError):
            _problems[harness] = str(result)
    return _SHARED


@pytest.fixture
def agents_dir(installed_cli_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVPOOLS_AGENTS_DIR", str(installed_cli_dir))
    yield installed_cli_dir


def require_agent(harness: str) -> None:
    """Skip, saying why, when the CLI could not be installed (npm or PyPI unreachable)."""
    if harness in _problems:
        pytest.skip(f"{harness} could not be installed: {_problems[harness]}")
