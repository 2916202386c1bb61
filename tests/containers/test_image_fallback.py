"""``auto`` when a task's image cannot be had: bubblewrap stands in, or the rollout is refused.

The policy (README, "Choosing a sandbox driver"): a backend whose driver was chosen by
``auto`` runs a rollout whose image is not on this machine and cannot be pulled with
bubblewrap instead, saying so in an ``environment`` event and the rollout's ``sandbox``
field, when the host's tools can stand in for the image (a Dockerfile whose apt
packages this host has; not a ready-made ``docker_image``). Otherwise, and always when
the container driver was asked for by name, the rollout ends with ``image_unavailable``
and the fixes that apply, which the live tail shows whole.

The unavailable base is ``localhost/envpools/absent-<random>``: a pull of it fails at once
on any machine, registry or not. Real podman, real bubblewrap, real backend.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envpools_cli import client as ep
from tests.cli.conftest import envpools_subprocess
from tests.helpers.containers import BASE_IMAGE, container_problem
from tests.integration.conftest import Backend, backends, local_task, make_task

PACKAGE = "hello"
"""GNU hello: a Debian package this host does not have (checked below)."""


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    if problem := container_problem():
        pytest.skip(problem)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap missing")
    with backends(tmp_path, "fallback") as run:
        yield lambda sandbox: run(sandbox=sandbox)


def _absent() -> str:
    return f"localhost/envpools/absent-{uuid.uuid4().hex[:10]}:1"


def _run(backend: Backend, task: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pool = f"p{time.monotonic_ns()}"
    backend.pool(pool, local_task(task.name, task))
    rollout_id = backend.rollout(pool, task.name)["rollout_id"]
    doc = backend.wait(rollout_id, timeout=120)
    return doc, list(ep.stream_rollout_events(rollout_id, **backend.conn))


def _environment(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["event"] == "environment"]


def test_auto_runs_a_task_whose_image_cannot_be_had_with_bubblewrap(
    start: Any, tmp_path: Path
) -> None:
    backend = start("auto")
    health = httpx.get(f"{backend.url}/healthz").json()
    assert health["sandbox"] == "container", health
    assert "bwrap" in health["sandbox_detail"]["fallback"], health

    base = _absent()
    task = make_task(
        tmp_path,
        "offline-base",
        dockerfile=f"FROM {base}\nWORKDIR /app\nCOPY repo/ /app/\n",
        solve="python3 -c 'print(6 * 7)' > /app/answer.txt",
        test="""
        [ "$(cat /app/answer.txt)" = 42 ] && echo 1 > /logs/verifier/reward.txt \\
            || echo 0 > /logs/verifier/reward.txt
        """,
    )
    doc, events = _run(backend, task)
    assert doc["status"] == "succeeded", doc.get("error")
    assert doc["reward_primary"] == 1.0
    sandbox = doc["sandbox"]
    assert sandbox["driver"] == "bwrap" and sandbox["fallback_from"] == "container", sandbox
    assert base in sandbox["reason"] and "could not be pulled" in sandbox["reason"], sandbox
    (fallback,) = [e for e in _environment(events) if e.get("fallback_from")]
    assert fallback["driver"] == "bwrap" and fallback["image"] == base, fallback
    assert "runs with bubblewrap" in fallback["message"], fallback
    assert any(e["message"] == f"pulling {base}" for e in _environment(events))

    # The next rollout of it goes straight to bubblewrap: the failed pull is remembered.
    again, events = _run(backend, task)
    assert again["status"] == "succeeded", again.get("error")
    assert again["sandbox"]["driver"] == "bwrap"
    assert not any(str(e.get("message")).startswith("pulling") for e in _environment(events))

    # A task whose image is here still runs in it, on the same backend.
    given = make_task(
        tmp_path,
        "image-here",
        dockerfile=None,
        toml=f'[environment]\ndocker_image = "{BASE_IMAGE}"\n',
    )
    here, _ = _run(backend, given)
    assert here["status"] == "succeeded", here.get("error")
    assert here["sandbox"] == {"driver": "container", "image": BASE_IMAGE}, here["sandbox"]


def _host_has(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() == "installed" or shutil.which(package) is not None


def test_auto_refuses_what_bubblewrap_cannot_stand_in_for_with_the_fixes(
    start: Any, tmp_path: Path
) -> None:
    if _host_has(PACKAGE):
        pytest.skip(f"this host has {PACKAGE}: bubblewrap could stand in")
    backend = start("auto")
    base = _absent()
    needs_package = make_task(
        tmp_path,
        "needs-hello",
        dockerfile=f"FROM {base}\nRUN apt-get install -y {PACKAGE}\nWORKDIR /app\n",
    )
    doc, events = _run(backend, needs_package)
    assert doc["status"] == "error", doc
    assert doc["error"]["code"] == "image_unavailable", doc["error"]
    message = doc["error"]["message"]
    assert base in message and "bubblewrap cannot stand in" in message, message
    assert PACKAGE in message and "ENVPOOLS_IMAGE_MAP" in message, message
    assert "--sandbox bwrap" not in message, "that fix does not apply to this task"
    assert not any(e.get("fallback_from") for e in _environment(events))

    ready_made = make_task(
        tmp_path, "ready-made", dockerfile=None, toml=f'[environment]\ndocker_image = "{base}"\n'
    )
    doc, _ = _run(backend, ready_made)
    assert doc["error"]["code"] == "image_unavailable", doc.get("error")
    assert "docker_image" in doc["error"]["message"], doc["error"]


def test_the_container_driver_by_name_is_kept_and_the_tail_shows_the_whole_hint(
    start: Any, tmp_path: Path
) -> None:
    backend = start("container")
    base = _absent()
    task = make_task(tmp_path, "offline", dockerfile=f"FROM {base}\nWORKDIR /app\n")
    doc, events = _run(backend, task)
    assert doc["status"] == "error" and doc["error"]["code"] == "image_unavailable", doc
    assert "sandbox" not in doc, "no sandbox ran it"
    assert not any(e.get("fallback_from") for e in _environment(events))
    hint = "or run the backend with the host's tools: envpools local up --sandbox bwrap"
    assert doc["error"]["message"].endswith(hint), doc["error"]

    tail = envpools_subprocess(
        "rollouts",
        "tail",
        doc["rollout_id"],
        env={"ENVPOOLS_API_URL": backend.url, "ENVPOOLS_API_KEY": backend.key, "COLUMNS": "80"},
    )
    assert tail.returncode == 0, tail.stderr
    flat = " ".join(tail.stdout.split())
    assert "[image_unavailable]" in flat, tail.stdout
    assert " ".join(hint.split()) in flat, tail.stdout
    assert f"{doc['rollout_id']}: error (image_unavailable)" in tail.stderr, tail.stderr
