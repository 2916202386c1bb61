"""``envpools local up --sandbox``: the driver asked for is the one running, and says so."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import envpools_subprocess
from tests.helpers.containers import container_problem


@pytest.fixture(autouse=True)
def _file_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    monkeypatch.delenv("ENVPOOLS_SANDBOX", raising=False)


def test_an_unknown_driver_is_a_usage_error() -> None:
    done = envpools_subprocess("local", "up", "--port", "0", "--sandbox", "vm")
    assert done.returncode == 2
    assert "--sandbox must be one of auto, container, bwrap, process" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_with_a_driver_reports_it_in_status_and_capabilities() -> None:
    if problem := container_problem():
        pytest.skip(problem)
    try:
        up = envpools_subprocess("local", "up", "--port", "0", "--sandbox", "container")
        assert up.returncode == 0, up.stderr
        assert "sandbox: container (podman" in up.stderr or "sandbox: container (docker" in (
            up.stderr
        )
        status = json.loads(envpools_subprocess("local", "status", "--json").stdout)
        assert status["sandbox"] == "container"
        detail = status["sandbox_detail"]
        assert detail["requested"] == "container" and detail["isolated"] is True
        assert detail["details"]["engine"] in ("podman", "docker")
        table = envpools_subprocess("local", "status").stdout
        engine = detail["details"]["engine"]
        assert f"sandbox\tcontainer ({engine} {detail['details']['version']}" in table, table
        # How images are built, and what this engine version is known for.
        builds = detail["details"]["builds"]
        assert builds["run_mounts"] == "tmpfs only"
        assert builds["context"] == "copied without links that leave it"
        if engine == "podman" and detail["details"]["version"].startswith("4.3."):
            assert any("CVE-2024-1753" in a for a in builds["engine_advisories"]), builds
            assert "CVE-2024-1753" in table, table
        assert "RUN --mount: tmpfs only" in table, table

        caps = envpools_subprocess("capabilities", "get", "-o", "json")
        assert caps.returncode == 0, caps.stderr
        sandbox = json.loads(caps.stdout)["sandbox"]
        assert sandbox["driver"] == "container"
        assert sandbox["details"]["engine"] == detail["details"]["engine"]
        assert sandbox["details"]["builds"]["run_mounts"] == "tmpfs only"

        # Another driver while this backend runs: refused, with the way out.
        other = envpools_subprocess("local", "up", "--port", "0", "--sandbox", "bwrap")
        assert other.returncode != 0
        assert "with the container sandbox, not bwrap" in other.stderr
        assert "envpools local down" in other.stderr
    finally:
        assert envpools_subprocess("local", "down").returncode == 0
