"""A task's Dockerfile is hostile: the two build escapes of CVE-2024-1753 stay inside.

podman < 4.9.4 (Debian 12 ships 4.3.1) follows a symbolic link in a ``RUN --mount``
source on the host: ``environment/rootlink -> /`` with ``source=rootlink``, or a stage
that makes ``/rootlink -> /`` and ``from=`` that stage, bind the host's root into the
build, read-write, as root. Each form here tries to write a canary into a root-owned
folder of the host (``/etc``) and into the backend's data folder, and to list that folder
(where ``envpools.db`` and the credential key are).

Three layers stop them, and each is tested on its own where it can be:

- the Dockerfile check refuses the mounts (the default);
- with mounts allowed (``ENVPOOLS_BUILD_MOUNTS=allow``), the build sandbox (a user
  namespace of unprivileged uids, the host's /tmp hidden) keeps the host's files out of
  reach, and the context copy leaves the escaping link out;
- the build sandbox alone, given a context that still holds the link.
"""

from __future__ import annotations

import json
import os
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
from tests.helpers.containers import BASE_IMAGE, container_problem, container_settings
from tests.integration.conftest import Backend, backends, local_task, make_task

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the escapes need a root backend")


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with backends(tmp_path, "builds", **container_settings(monkeypatch)) as run:

        def with_env(**env: str) -> Backend:
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            return run()

        yield with_env


class Canaries:
    """Files the attack tries to make on the host; removed afterwards if it did."""

    def __init__(self, data_dir: Path) -> None:
        tag = uuid.uuid4().hex[:12]
        self.data_dir = data_dir
        self.paths = [Path("/etc") / f"envpools-canary-{tag}", data_dir / f"canary-{tag}"]

    def attack(self) -> str:
        """Shell commands, run with the host's root at /h, that must all fail."""
        steps = [f"touch /h{p} && echo wrote-{p.name}" for p in self.paths]
        steps.append(f"ls -la /h{self.data_dir}")
        steps.append(f"head -c 64 /h{self.data_dir}/*.db")  # names what it lists, not here
        steps.append("echo attack-ran")
        return "; ".join(steps) + "; true"

    def made(self) -> list[Path]:
        return [p for p in self.paths if p.exists()]

    def remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def link_form(root: Path, name: str, canaries: Canaries) -> Path:
    """``environment/rootlink -> /`` and ``RUN --mount=type=bind,source=rootlink``."""
    task = make_task(
        root,
        name,
        dockerfile=(
            f"FROM {BASE_IMAGE}\n"
            "RUN --mount=type=bind,source=rootlink,target=/h,rw "
            f"sh -c '{canaries.attack()}'\n"
            f"WORKDIR /app\nCOPY repo/ /app/\n# {uuid.uuid4().hex}\n"
        ),
    )
    os.symlink("/", task / "environment" / "rootlink")
    return task


def stage_form(root: Path, name: str, canaries: Canaries) -> Path:
    """A stage makes ``/rootlink -> /``; ``RUN --mount=type=bind,from=evil`` mounts it."""
    return make_task(
        root,
        name,
        dockerfile=(
            f"FROM {BASE_IMAGE} AS evil\nRUN ln -s / /rootlink\n"
            f"FROM {BASE_IMAGE}\n"
            "RUN --mount=type=bind,from=evil,source=/rootlink,target=/h,rw "
            f"sh -c '{canaries.attack()}'\n"
            f"WORKDIR /app\nCOPY repo/ /app/\n# {uuid.uuid4().hex}\n"
        ),
    )


def run_task(backend: Backend, task: Path) -> tuple[dict[str, Any], str]:
    pool = f"p{time.monotonic_ns()}"
    backend.pool(pool, local_task(task.name, task))
    rollout_id = backend.rollout(pool, task.name)["rollout_id"]
    doc = backend.wait(rollout_id, timeout=300)
    events = list(ep.stream_rollout_events(rollout_id, **backend.conn))
    build_log = backend.data_dir / "trials" / rollout_id
    logs = "".join(p.read_text(errors="replace") for p in build_log.rglob("*.log"))
    return doc, json.dumps(events) + logs


FORMS = {"link": link_form, "stage": stage_form}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_dockerfile_check_refuses_both_escapes(start: Any, tmp_path: Path, form: str) -> None:
    backend = start()
    canaries = Canaries(backend.data_dir)
    try:
        doc, seen = run_task(backend, FORMS[form](tmp_path, f"escape-{form}", canaries))
        assert canaries.made() == [], f"the build wrote on the host: {canaries.made()}"
    finally:
        canaries.remove()
    assert doc["status"] == "error", doc
    assert doc["error"]["code"] == "environment_unsupported", doc["error"]
    assert "RUN --mount=type=bind" in doc["error"]["message"]
    assert "tmpfs" in doc["error"]["message"]
    assert "attack-ran" not in seen, "nothing of the Dockerfile ran"
    assert "envpools.db" not in seen


@pytest.mark.parametrize("form", sorted(FORMS))
def test_with_mounts_allowed_the_build_sandbox_holds(start: Any, tmp_path: Path, form: str) -> None:
    backend = start(ENVPOOLS_BUILD_MOUNTS="allow")
    deadline = time.monotonic() + 120
    while True:  # the build sandbox is checked in the background once the backend starts
        builds = ep.get_capabilities(**backend.conn)["sandbox"]["details"]["builds"]
        if not builds["isolation"].startswith("being checked") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if builds["isolation"].startswith("none"):
        pytest.skip(f"no build sandbox here: {builds['isolation']}")
    assert builds["run_mounts"] == "allowed", builds
    canaries = Canaries(backend.data_dir)
    try:
        doc, seen = run_task(backend, FORMS[form](tmp_path, f"allowed-{form}", canaries))
        assert canaries.made() == [], f"the build wrote on the host: {canaries.made()}"
    finally:
        canaries.remove()
    assert "envpools.db" not in seen, "the build listed the backend's data folder"
    assert "credentials.key" not in seen
    if form == "link":
        # The copy of the context has no rootlink: the mount's source is not the host's /.
        assert "environment/rootlink is left out of the build" in seen
    else:
        assert "attack-ran" in seen, "the stage form ran, inside the sandbox"
        assert doc["status"] == "succeeded", doc


def test_the_build_sandbox_alone_holds_against_a_link_in_the_context(tmp_path: Path) -> None:
    """No Dockerfile check, no context copy: the link reaches the builder, as on main."""
    if (problem := container_problem()) is not None:
        pytest.skip(problem)
    runtime = probe_runtime().runtime
    assert runtime is not None
    sandbox = BuildSandbox(runtime, build_store())
    if (why := sandbox.problem()) is not None:
        pytest.skip(f"no build sandbox here: {why}")
    image_id = subprocess.run(
        runtime.command("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sandbox.bring_in(BASE_IMAGE, image_id)
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "envpools.db").write_text("secret rows\n")
    # A root-only folder the sandbox does not hide: only the uid keeps the build out.
    private = Path("/var/lib") / f"envpools-private-{uuid.uuid4().hex[:8]}"
    private.mkdir(mode=0o700)
    (private / "envpools.db").write_text("secret rows\n")
    canaries = Canaries(data_dir)
    canaries.paths.append(private / "canary")
    context = sandbox.area / "contexts" / f"raw-{uuid.uuid4().hex[:8]}"
    context.mkdir(mode=0o700)
    try:
        os.symlink("/", context / "rootlink")
        attack = canaries.attack().replace(
            "; true", f"; ls /h{private}; cat /h{private}/*.db; true"
        )
        (context / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\n"
            f"RUN --mount=type=bind,source=rootlink,target=/h,rw sh -c '{attack}'\n"
        )
        for path in (context, *context.iterdir()):
            os.lchown(path, sandbox.uid, sandbox.uid)
        tag = f"localhost/envpools/escape-{uuid.uuid4().hex[:8]}:1"
        done = subprocess.run(
            sandbox.command("build", "--network", "host", "--layers=false", "--pull=never", "-t", tag,
                            sandbox.inside(context)),
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert canaries.made() == [], f"the build wrote on the host: {canaries.made()}"
        assert "attack-ran" in output, output[-2000:]  # it ran, with the host's / at /h
        assert "secret rows" not in output, output[-2000:]
        assert "envpools.db" not in output, "a root-only folder was listed"
        assert "Permission denied" in output, output[-2000:]
        sandbox.run("rmi", "--force", tag)
    finally:
        canaries.remove()
        shutil.rmtree(context, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
