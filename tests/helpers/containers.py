"""The container sandbox driver in tests: the base image, its stand-ins, and when to skip.

No image registry is reachable from CI: ``scripts/base-image`` (run by ``.ci/run``) makes
``localhost/envpools/bookworm`` from the Debian mirror with debootstrap, and tests map the
registry images their tasks name to it with ``ENVPOOLS_IMAGE_MAP``.
"""

from __future__ import annotations

import functools
import glob
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from envpools_cli.server.sandbox.container import OWNER_LABEL, owner_id
from envpools_cli.server.sandbox.engine import probe_runtime

BASE_IMAGE = "localhost/envpools/bookworm:latest"
IMAGE_MAP = f"python:3.12-slim={BASE_IMAGE},debian:bookworm-slim={BASE_IMAGE}"


@functools.cache
def container_problem() -> str | None:
    """Why the container driver cannot run here (None: it can)."""
    probe = probe_runtime()
    if probe.runtime is None:
        return f"no container engine works here: {probe.reason}"
    found = subprocess.run(
        probe.runtime.command("image", "exists", BASE_IMAGE)
        if probe.runtime.engine == "podman"
        else probe.runtime.command("image", "inspect", BASE_IMAGE),
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        return f"the base image {BASE_IMAGE} is missing: scripts/base-image makes it"
    return None


def container_settings(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Backend settings for the container driver (the test is skipped where it cannot run)."""
    if problem := container_problem():
        pytest.skip(problem)
    monkeypatch.setenv("ENVPOOLS_IMAGE_MAP", IMAGE_MAP)
    return {"sandbox": "container"}


def driver_settings(driver: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Settings for a backend on ``driver`` (``bwrap`` or ``container``)."""
    if driver == "container":
        return container_settings(monkeypatch)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap missing")
    return {"sandbox": "bwrap"}


def engine_command(*args: str) -> list[str]:
    """``args`` for the engine the probe chose, with its global options."""
    runtime = probe_runtime().runtime
    assert runtime is not None
    return runtime.command(*args)


def containers_of(data_dir: Path) -> list[str]:
    """Containers (running or not) of the backend whose data folder is ``data_dir``."""
    owner = owner_id(data_dir)
    done = subprocess.run(
        engine_command(
            "ps", "-a", "-q", "--no-trunc", "--filter", f"label={OWNER_LABEL}={owner}"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout.split()


def cgroups_of(container_id: str) -> list[str]:
    """The cgroup folders named for a container, in every hierarchy (v1 or v2)."""
    found: list[str] = []
    for depth in range(1, 5):
        pattern = "/sys/fs/cgroup/" + "*/" * depth + f"*{container_id}*"
        found += glob.glob(pattern)
    return found


def mounts_under(path: Path) -> list[str]:
    """Mount points on the host below ``path``."""
    text = Path("/proc/self/mountinfo").read_text()
    where = str(path.resolve())
    return [line.split()[4] for line in text.splitlines() if line.split()[4].startswith(where)]
