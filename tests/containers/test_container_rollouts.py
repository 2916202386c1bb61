"""Rollouts in the container driver: the task's own image, built once, and nothing left after.

Kept few and lean (each builds or runs real containers): the bundled example, a task
whose Dockerfile installs a Debian package this host lacks (built, then cached, and
refused by bwrap with the driver named), and a cancel and a backend restart that must
leave no container, cgroup or mount behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.server.sandbox.build_sandbox import BuildSandbox, build_store
from envpools_cli.server.sandbox.engine import probe_runtime
from tests.cli.conftest import envpools_subprocess
from tests.helpers.containers import (
    BASE_IMAGE,
    cgroups_of,
    container_settings,
    containers_of,
    engine_command,
    mounts_under,
)
from tests.integration.conftest import (
    EXAMPLE,
    Backend,
    backends,
    local_task,
    make_task,
)

PACKAGE = "hello"
"""GNU hello: a small Debian package the host does not have (checked below)."""


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start backends (container driver unless told), stopped after the test."""
    with backends(tmp_path, "containers", **container_settings(monkeypatch)) as run:
        yield run


def _rollout(backend: Backend, task: Path, timeout: float = 240) -> tuple[dict[str, Any], list]:
    pool = f"p{time.monotonic_ns()}"
    backend.pool(pool, local_task(task.name, task))
    rollout_id = backend.rollout(pool, task.name)["rollout_id"]
    doc = backend.wait(rollout_id, timeout=timeout)
    return doc, list(ep.stream_rollout_events(rollout_id, **backend.conn))


def _environment(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["data"].get("message")) for e in events if e["event"] == "environment"]


def _builder_containers() -> set[str]:
    """Builders' working containers, in the engine's store and the build sandbox's."""
    external = ["--external"] if "podman" in engine_command()[0] else []
    done = subprocess.run(
        engine_command("ps", "-a", *external, "--format", "{{.Names}}"),
        capture_output=True,
        text=True,
        check=True,
    )
    names = set(done.stdout.split())
    runtime = probe_runtime().runtime
    if runtime is not None and runtime.engine == "podman":
        sandbox = BuildSandbox(runtime, build_store())
        if sandbox.problem() is None:
            found = sandbox.run("ps", "-a", "--external", "--format", "{{.Names}}")
            names |= {f"sandbox:{n}" for n in found.stdout.decode().split()}
    # Other tests' rollouts come and go meanwhile: only builders' containers count here.
    return {n for n in names if n.endswith("-working-container")}


def _host_has(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() == "installed" or shutil.which(package) is not None


def test_bundled_example_passes_in_its_own_image(start: Any) -> None:
    backend = start()
    doc, events = _rollout(backend, EXAMPLE)
    assert doc["status"] == "succeeded", doc
    assert doc["reward_primary"] == 1.0
    messages = _environment(events)
    assert any("workspace /app copied from the image" in m for m in messages), messages
    backend.thread.stop()
    assert containers_of(backend.data_dir) == []
    assert mounts_under(backend.data_dir) == []


def test_a_package_the_dockerfile_installs_is_there_for_the_tests(
    start: Any, tmp_path: Path
) -> None:
    if _host_has(PACKAGE):
        pytest.skip(f"this host has {PACKAGE}: the task would not show the difference")
    nonce = uuid.uuid4().hex
    task = make_task(
        tmp_path,
        f"needs-hello-{nonce[:8]}",
        dockerfile=(
            "FROM debian:bookworm-slim\n"
            f"RUN apt-get update && apt-get install -y --no-install-recommends {PACKAGE} "
            "&& rm -rf /var/lib/apt/lists/*\n"
            "WORKDIR /app\nCOPY repo/ /app/\n"
        ),
        # A new environment hash per test run: the first rollout must build.
        files={"nonce.txt": nonce},
        solve="hello -g 'solved in the image' > /app/greeting.txt",
        test="""
        expected="$(hello -g 'solved in the image')" || { echo 0 > /logs/verifier/reward.txt; exit 0; }
        [ "$(cat /app/greeting.txt)" = "$expected" ] && echo 1 > /logs/verifier/reward.txt \
            || echo 0 > /logs/verifier/reward.txt
        """,
        toml="[environment]\nbuild_timeout_sec = 300\n",
    )
    backend = start()
    built_image = None
    try:
        doc, events = _rollout(backend, task)
        messages = _environment(events)
        assert doc["status"] == "succeeded", (doc, messages)
        assert doc["reward_primary"] == 1.0
        assert any(m.startswith("building image") for m in messages), messages
        built = [e["data"] for e in events if str(e["data"].get("message", "")).startswith("built")]
        assert built and built[0]["cached"] is False
        built_image = built[0]["image"]

        again, events = _rollout(backend, task)
        messages = _environment(events)
        assert again["reward_primary"] == 1.0
        assert not any(m.startswith("building image") for m in messages), messages
        assert any(f"image {built_image} is cached" in m for m in messages), messages

        # The same task with bubblewrap: refused at once, the driver and package named.
        bwrap = start(sandbox="bwrap")
        refused, _ = _rollout(bwrap, task, timeout=60)
        assert refused["status"] == "error"
        error = refused["error"]
        assert error["code"] == "environment_unsupported", error
        assert f"installs {PACKAGE}" in error["message"]
        assert "The bwrap sandbox driver" in error["message"]
        assert "--sandbox container" in error["message"]

        # The image in `envpools local images`, and pruned by it.
        listed = envpools_subprocess("local", "images", "list", "--task", task.name, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert [row["image"] for row in json.loads(listed.stdout)] == [built_image]
        pruned = envpools_subprocess("local", "images", "prune", "--task", task.name)
        assert pruned.returncode == 0, pruned.stderr
        assert f"removed {built_image}" in pruned.stderr
        listed = envpools_subprocess("local", "images", "list", "--task", task.name, "-o", "json")
        assert json.loads(listed.stdout) == []
        built_image = None
    finally:
        if built_image:
            subprocess.run(engine_command("rmi", built_image), capture_output=True, check=False)


def _running_container(backend: Backend, timeout: float = 120) -> str:
    """The backend's container, once it runs (has cgroups: where the checks look)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = containers_of(backend.data_dir)
        if found and cgroups_of(found[0]):
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no running container with cgroups (containers: {found})")


def test_cancel_timeout_and_restart_leave_nothing_behind(start: Any, tmp_path: Path) -> None:
    task = make_task(tmp_path, "sleeper", solve="echo started; sleep 600")
    backend = start()
    pool = "p"
    backend.pool(pool, local_task(task.name, task))
    rollout_id = backend.rollout(pool, task.name)["rollout_id"]
    container = _running_container(backend)
    began = time.monotonic()
    ep.cancel_rollout(rollout_id, **backend.conn)
    assert backend.wait(rollout_id, timeout=60)["status"] == "cancelled"
    while containers_of(backend.data_dir) and time.monotonic() - began < 30:
        time.sleep(0.2)
    assert containers_of(backend.data_dir) == []
    assert cgroups_of(container) == []

    # The agent phase's timeout: its container is killed with it.
    timed = backend.rollout(pool, task.name, timeouts={"agent_sec": 3})["rollout_id"]
    container = _running_container(backend)
    doc = backend.wait(timed, timeout=90)
    assert doc["status"] in ep.TERMINAL_STATUSES and doc["reward_primary"] != 1.0, doc
    notes = [str(e["data"]) for e in ep.stream_rollout_events(timed, **backend.conn)]
    assert any("timed out" in note or "timeout" in note for note in notes), notes
    assert containers_of(backend.data_dir) == []
    assert cgroups_of(container) == []

    # A backend stopped with a rollout running, then started again on the same data.
    second = backend.rollout(pool, task.name)["rollout_id"]
    container = _running_container(backend)
    backend.thread.stop()
    restarted = start(data_dir=backend.data_dir)
    assert containers_of(restarted.data_dir) == []
    assert cgroups_of(container) == []
    assert mounts_under(restarted.data_dir) == []
    status = ep.get_rollout(second, **restarted.as_org(backend.key))["status"]
    assert status in ep.TERMINAL_STATUSES, status


def test_docker_image_is_used_as_is_a_missing_one_is_explained_a_slow_build_stopped(
    start: Any, tmp_path: Path
) -> None:
    backend = start()
    given = make_task(
        tmp_path,
        "given-image",
        dockerfile=None,
        toml=f'[environment]\ndocker_image = "{BASE_IMAGE}"\n',
        solve="command -v debootstrap >/dev/null || echo from-the-image > /app/where.txt",
        test="""
        [ "$(cat /app/where.txt)" = from-the-image ] && echo 1 > /logs/verifier/reward.txt \
            || echo 0 > /logs/verifier/reward.txt
        """,
    )
    doc, events = _rollout(backend, given)
    messages = _environment(events)
    assert doc["status"] == "succeeded", (doc.get("error"), messages)
    assert doc["reward_primary"] == 1.0
    assert any(f"image {BASE_IMAGE} (task.toml docker_image)" in m for m in messages), messages
    assert not any(m.startswith("building image") for m in messages), messages

    absent = make_task(
        tmp_path,
        "absent-image",
        dockerfile=None,
        toml=f'[environment]\ndocker_image = "localhost/envpools/absent-{uuid.uuid4().hex[:8]}:1"\n',
    )
    doc, _ = _rollout(backend, absent, timeout=90)
    assert doc["status"] == "error", doc
    assert doc["error"]["code"] == "image_unavailable", doc["error"]
    assert "could not be pulled" in doc["error"]["message"]
    assert "ENVPOOLS_IMAGE_MAP" in doc["error"]["message"]
    assert "--sandbox bwrap" in doc["error"]["message"]

    slow = make_task(
        tmp_path,
        f"slow-build-{uuid.uuid4().hex[:8]}",
        dockerfile=f"FROM debian:bookworm-slim\nRUN sleep 120 # {uuid.uuid4().hex}\n",
        toml="[environment]\nbuild_timeout_sec = 3\n",
    )
    before = _builder_containers()
    began = time.monotonic()
    doc, events = _rollout(backend, slow, timeout=90)
    assert doc["status"] == "error", doc
    assert doc["error"]["code"] == "environment_build_timeout", doc["error"]
    assert "build_timeout_sec" in doc["error"]["message"]
    assert time.monotonic() - began < 60, "the build was stopped, not waited out"
    # podman's builder leaves its working container when stopped: the build removes it.
    assert _builder_containers() - before == set()
