"""A newcomer's first command, as the Quick Start gives it: ``envpools demo``, nothing set.

Fresh HOME and state (the suite's autouse fixture), no ``ENVPOOLS_SANDBOX`` (the suite sets
it for every other test: removed here), the real backend started by the demo itself:

- with podman installed and no registry (this machine, CI): ``auto`` picks the container
  driver, the bundled task's ``FROM python:3.12-slim`` cannot be pulled, and the rollout
  runs with bubblewrap instead, saying so (it ended with ``image_unavailable``, exit 5,
  before);
- with no container engine at all (a PATH without podman or docker): bubblewrap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.containers import container_problem

ENGINES = ("podman", "docker")


def _envpools(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENVPOOLS_SANDBOX"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "envpools_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def down() -> Iterator[None]:
    yield
    _envpools("local", "down")


def _rollout_of(demo: subprocess.CompletedProcess[str]) -> dict[str, object]:
    (line,) = [x for x in demo.stderr.splitlines() if x.startswith("launched rollout ")]
    shown = _envpools("-p", "local", "rollouts", "get", line.split()[2], "-o", "json")
    assert shown.returncode == 0, shown.stderr
    doc: dict[str, object] = json.loads(shown.stdout)
    return doc


@pytest.mark.timeout(360)
def test_demo_with_podman_and_no_registry(down: None) -> None:
    if problem := container_problem():
        pytest.skip(problem)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap missing")
    demo = _envpools("demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "status succeeded" in demo.stdout and "Cost total" in demo.stdout
    assert "sandbox: container" in demo.stderr, "auto chose the container driver"
    doc = _rollout_of(demo)
    sandbox = doc["sandbox"]
    assert isinstance(sandbox, dict)
    if sandbox["driver"] == "container":  # a registry answered: the image was pulled
        assert "pulling python:3.12-slim" in demo.stdout
        return
    assert sandbox["driver"] == "bwrap" and sandbox["fallback_from"] == "container", sandbox
    assert "python:3.12-slim" in str(sandbox["reason"])
    flat = " ".join(demo.stdout.split())
    assert "This rollout runs with bubblewrap over the host's tools instead" in flat, flat


@pytest.mark.timeout(360)
def test_demo_with_no_container_engine(down: None, tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap missing")
    # This machine's PATH, less every container engine: links to everything else.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(ENGINES) or (bin_dir / entry.name).exists():
                continue
            (bin_dir / entry.name).symlink_to(entry.path)
    assert shutil.which("podman", path=str(bin_dir)) is None
    assert shutil.which("docker", path=str(bin_dir)) is None
    demo = _envpools("demo", path=str(bin_dir))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "status succeeded" in demo.stdout
    assert "sandbox: bwrap" in demo.stderr and "no container engine works here" in demo.stderr
    sandbox = _rollout_of(demo)["sandbox"]
    assert isinstance(sandbox, dict) and sandbox["driver"] == "bwrap", sandbox
    assert "no container engine works here" in str(sandbox.get("reason")), sandbox
