"""Shared fixtures: every test runs with its own empty config, data and key store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

_ENV_PREFIXES = ("ENVPOOLS_", "SYNTH_", "ENV_POOLS_")
_ENV_NAMES = ("ENVIRONMENT", "APP_ENVIRONMENT", "NO_COLOR", "FORCE_COLOR", "CI")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every path at tmp_path and drop any envpools/Synth setting of the host."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    for sub in ("config", "data", "state", "cache"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    # Never the user's real keyring (the local backend keeps its credential key there
    # when one answers); keyring tests delete this and bring their own Secret Service.
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    # Backends started by tests use bubblewrap (or plain processes) unless a test asks
    # for the container driver: `auto` would pick a container engine where one works.
    monkeypatch.setenv("ENVPOOLS_SANDBOX", "bwrap" if shutil.which("bwrap") else "process")
    yield home


#: Files that take minutes, started right after the agent tests (which already lead the
#: alphabetical order), so that four workers do not end on them one after another while
#: the small files are long done (the clean-clone run spent its last 7 of 16 minutes so).
_LONG_FILES = (
    "tests/faults/test_open_files.py",
    "tests/hostile/test_limits.py",
    "tests/cluster/test_ray_executor.py",
    "tests/containers/test_container_rollouts.py",
    "tests/hostile/test_redaction.py",
    "tests/hostile/test_unprivileged_backend.py",
    "tests/faults/test_openapi.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))

    def rank(item: pytest.Item) -> int:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if where.startswith("tests/agents/"):
            return 0
        return 1 if where in _LONG_FILES else 2

    items.sort(key=rank)  # stable: each file keeps its tests' order
