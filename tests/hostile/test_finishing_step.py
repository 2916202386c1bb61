"""Finding 5 (MEDIUM): a FIFO or a non-UTF-8 name hung the finishing step forever, and
``cancel`` could not end the rollout."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.trial.runner import RolloutRunner

from .conftest import Backend, hostile_run, local_task, make_task, needs_bwrap

pytestmark = needs_bwrap


def test_fifos_do_not_hang_the_rollout(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "fifo",
        solve="mkfifo /app/fifo /logs/artifacts/fifo /logs/agent/oracle-fifo && echo made",
        test="mkfifo /logs/verifier/reward.json; echo 1 > /logs/verifier/reward.txt",
    )
    run = hostile_run(backend, task, timeout=60)

    assert run.doc["status"] == "succeeded", run.doc
    paths = {
        a["path"] for a in ep.list_rollout_artifacts(run.rollout_id, **backend.conn)["artifacts"]
    }
    assert "artifacts/fifo" not in paths and "workspace.tar.gz" in paths


def test_non_utf8_names_do_not_hang_the_rollout(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "bad-names",
        solve=r"""
        echo hello > "/app/$(printf 'caf\xe9-\xff.txt')"
        echo hi > "/logs/artifacts/$(printf 'bin\xfe.log')"
        mkdir -p "/app/$(printf 'dir\x80')" && echo x > "/app/$(printf 'dir\x80')/inner"
        echo ok > /logs/artifacts/plain.txt
        """,
    )
    run = hostile_run(backend, task, timeout=60)

    assert run.doc["status"] == "succeeded", run.doc
    manifest = ep.list_rollout_artifacts(run.rollout_id, **backend.conn)["artifacts"]
    paths = {a["path"] for a in manifest}
    assert "artifacts/plain.txt" in paths and "workspace.diff" in paths
    archive = ep.fetch_artifact(run.rollout_id, "workspace.tar.gz", **backend.conn)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = {m.name.encode("utf-8", "surrogateescape") for m in tar.getmembers()}
    assert b"workspace/caf\xe9-\xff.txt" in names, "the tarball keeps the name's bytes"
    diff = ep.fetch_artifact(run.rollout_id, "workspace.diff", **backend.conn).decode()
    assert "+hello" in diff


@pytest.fixture
def stuck_collection(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The finishing step blocks (as it did on a FIFO) until the test releases it."""
    release = threading.Event()

    def stuck(self: RolloutRunner) -> None:
        release.wait(120)

    monkeypatch.setattr(RolloutRunner, "_outputs", stuck)
    yield release
    release.set()


def test_cancel_ends_a_rollout_stuck_in_its_finishing_step(
    backend: Backend, tmp_path: Path, stuck_collection: threading.Event
) -> None:
    task = make_task(tmp_path, "stuck")
    backend.pool("p", local_task("stuck", task))
    rollout_id = backend.rollout("p", "stuck")["rollout_id"]
    deadline = time.monotonic() + 60
    while True:  # the reward is out: the rollout is in its finishing step, stuck
        summary = ep.get_rollout_summary(rollout_id, **backend.conn)
        if (summary.get("last_event") or {}).get("event") == "reward":
            break
        assert time.monotonic() < deadline, summary
        time.sleep(0.05)
    assert summary["status"] == "verifying"
    started = time.monotonic()
    ep.cancel_rollout(rollout_id, **backend.conn)
    doc = backend.wait(rollout_id, timeout=20)
    assert doc["status"] == "cancelled"
    assert time.monotonic() - started < 20
    events = list(ep.stream_rollout_events(rollout_id, **backend.conn))
    assert events[-1]["event"] == "lifecycle" and events[-1]["data"]["status"] == "cancelled"
    assert ep.get_queue_status(**backend.conn)["total_running"] == 0, "the slot is free again"


def test_the_finishing_step_has_its_own_deadline(
    backend_factory: object, tmp_path: Path, stuck_collection: threading.Event
) -> None:
    backend: Backend = backend_factory(finish_timeout_sec=2.0)  # type: ignore[operator]
    task = make_task(tmp_path, "slow-finish")
    run = hostile_run(backend, task, timeout=30)
    assert run.doc["status"] == "succeeded" and run.doc["reward_primary"] == 1.0
    assert any("artifacts are incomplete" in str(e["data"].get("message")) for e in run.events)
