"""A full disk is said as such, and the backend recovers when space comes back.

The backend's data folder is on a real 48 MB tmpfs. A task fills it from inside its sandbox.
Before: that rollout ended ``internal`` with a traceback (the phase log could not be
written), later rollouts ended ``bad_task_source`` (blaming their task) and creates answered
500 "retryable". Now the rollout ends ``error``/``disk_full`` naming the folder and what is
left, a create below the free-space floor is answered 507 ``disk_full`` with the reason
(nothing created, nothing failed half-way), and once space is freed everything runs again.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from tests.cli.conftest import envpools_subprocess
from tests.integration.conftest import fast_session, local_task, make_task, start_backend

from .conftest import rollout_request

FLOOR_MB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs of this test's own (needs root, as CI runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_backend(small_disk: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    data_dir = small_disk / "backend"
    thread = start_backend(data_dir, min_free_mb=FLOOR_MB)
    _, key = thread.create_key("pro")
    session = fast_session()
    yield data_dir, {"backend_base": thread.url, "api_key": key, "session": session}
    session.close()
    thread.stop()


def _ended(rollout_id: str, conn: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = ep.get_rollout(rollout_id, **conn)
        if doc["status"] in ep.TERMINAL_STATUSES:
            return doc
        assert time.monotonic() < deadline, f"{rollout_id} stayed {doc['status']}"
        time.sleep(0.1)


def test_a_full_data_dir_is_disk_full_and_recovers(
    full_backend: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data_dir, conn = full_backend
    fill = make_task(tmp_path, "fill", solve="head -c 200M /dev/zero > /app/fill; echo $?\n")
    fine = make_task(tmp_path, "fine")
    tasks = [local_task("fill", fill).model_dump(), local_task("fine", fine).model_dump()]
    ep.create_pool(request={"pool_id": "p", "pool_type": "sandbox", "tasks": tasks}, **conn)

    filled = ep.create_rollout(request=rollout_request("p", "fill"), **conn)["rollout_id"]
    doc = _ended(filled, conn)
    assert doc["status"] == "error", doc
    assert doc["error"]["code"] == "disk_full", doc["error"]
    message = doc["error"]["message"]
    assert str(data_dir) in message and "free of" in message, message
    assert shutil.disk_usage(data_dir).free < FLOOR_MB * 1024 * 1024

    # Below the floor: a create is refused, plainly, and creates nothing.
    with pytest.raises(ep.APIError) as refused:
        ep.create_rollout(request=rollout_request("p", "fine"), **conn)
    assert refused.value.status_code == 507, refused.value
    assert refused.value.code == "disk_full"
    assert str(data_dir) in str(refused.value) and f"{FLOOR_MB} MB" in str(refused.value)
    assert len(ep.list_rollouts(**conn)["rollouts"]) == 1
    env = {"ENVPOOLS_API_URL": conn["backend_base"], "ENVPOOLS_API_KEY": conn["api_key"]}
    cli = envpools_subprocess(
        "rollouts", "create", "--pool", "p", "--task", "faults/fine", "-a", "oracle", env=env
    )
    assert cli.returncode == 1, cli.stderr
    assert "disk_full" in cli.stderr or "is full" in cli.stderr, cli.stderr
    assert "free some space" in cli.stderr and "Traceback" not in cli.stderr

    # Space comes back: the filled rollout's end is stored and new rollouts run.
    for big in (data_dir / "trials" / filled).rglob("fill"):
        with contextlib.suppress(FileNotFoundError):
            big.unlink()
    assert shutil.disk_usage(data_dir).free > FLOOR_MB * 1024 * 1024
    ok = ep.create_rollout(request=rollout_request("p", "fine"), **conn)["rollout_id"]
    assert _ended(ok, conn)["status"] == "succeeded"
    assert ep.get_rollout(filled, **conn)["error"]["code"] == "disk_full"
    events = list(ep.stream_rollout_events(filled, **conn))
    assert events[-1]["data"]["error"]["code"] == "disk_full"
