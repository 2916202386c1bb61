"""The container engine probe: a real container run, and a reason for every engine that fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from envpools_cli.server.sandbox.engine import (
    ContainerRuntime,
    exit_zero_elf,
    hard_limit,
    probe_runtime,
)

needs_podman = pytest.mark.skipif(shutil.which("podman") is None, reason="podman missing")


def test_the_probe_executable_runs_and_exits_zero(tmp_path: Path) -> None:
    binary = exit_zero_elf()
    assert binary is not None and len(binary) < 200
    path = tmp_path / "true"
    path.write_bytes(binary)
    path.chmod(0o755)
    assert subprocess.run([str(path)], check=False).returncode == 0
    assert exit_zero_elf("sparc") is None


def test_no_engine_installed_names_each_one() -> None:
    probe = probe_runtime({"PATH": "/nonexistent"}, fresh=True)
    assert probe.runtime is None
    assert probe.reason == "podman: not installed; docker: not installed"


def test_an_engine_that_is_neither_podman_nor_docker_is_refused() -> None:
    env = {"PATH": os.environ["PATH"], "ENVPOOLS_CONTAINER_ENGINE": "ls"}
    probe = probe_runtime(env, fresh=True)
    assert probe.runtime is None
    assert "ls: not podman or docker" in probe.reason


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker client missing")
def test_docker_without_a_daemon_says_so() -> None:
    if subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0:
        pytest.skip("a Docker daemon answers here")
    env = {"PATH": os.environ["PATH"], "ENVPOOLS_CONTAINER_ENGINE": "docker"}
    probe = probe_runtime(env, fresh=True)
    assert probe.runtime is None
    assert probe.reason.startswith("docker: ")
    assert "daemon" in probe.reason.lower()


def test_ulimits_stay_within_this_process_hard_limits() -> None:
    runtime = ContainerRuntime("podman", "/usr/bin/podman", "4")
    args = runtime.ulimits(nofile=10**9, nproc=64)
    values = dict(a.split("=", 1) for a in args[1::2])
    nofile_hard = hard_limit("nofile")
    expected = str(nofile_hard) if nofile_hard is not None else str(10**9)
    assert values["nofile"] == f"{expected}:{expected}"
    assert values["nproc"] == "64:64"
    assert values["core"] == "0:0"


@needs_podman
def test_podman_runs_a_container_with_explicit_settings() -> None:
    probe = probe_runtime(fresh=True)
    assert probe.runtime is not None, probe.reason
    runtime = probe.runtime
    assert runtime.engine == "podman"
    # Every later command carries the configuration that worked, spelled out.
    assert runtime.oci_runtime and runtime.cgroup_manager and runtime.storage_in_use
    assert runtime.global_args[:2] == ["--runtime", runtime.oci_runtime]
    version = subprocess.run(
        runtime.command("version", "--format", "{{.Client.Version}}"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == runtime.version


@needs_podman
def test_a_missing_oci_runtime_is_the_reason_given() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "ENVPOOLS_CONTAINER_ENGINE": "podman",
        "ENVPOOLS_OCI_RUNTIME": "no-such-runtime",
    }
    probe = probe_runtime(env, fresh=True)
    assert probe.runtime is None
    assert "podman cannot run a container here" in probe.reason
    assert "no-such-runtime" in probe.reason
