"""Admission by resources (issue 20): what a rollout reserves, what the machine can give,
why a queued rollout waits, and a task no machine here could hold refused at create."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.server.scheduling.admission import machine_memory_mb, usable_cores

from .conftest import Backend, fast_session, local_task, make_task, needs_bwrap, start_backend

pytestmark = needs_bwrap


def _backend(tmp_path: Path, **settings: Any) -> Iterator[Backend]:
    thread = start_backend(tmp_path / "backend", **settings)
    org, key = thread.create_key("pro")
    session = fast_session()
    yield Backend(thread, key, org.org_id, session, tmp_path / "backend")
    session.close()
    thread.stop()


def _sleeper(tmp_path: Path, name: str = "nap", toml: str = "", seconds: float = 30) -> Path:
    return make_task(tmp_path, name, solve=f"sleep {seconds}", toml=toml)


def _queue_entry(backend: Backend, pool_id: str) -> dict[str, Any]:
    status = ep.get_queue_status(**backend.conn)
    return next(p for p in status["pools"] if p["pool_id"] == pool_id)


@pytest.fixture
def one_at_a_time(tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(tmp_path, max_running=1)


def test_a_queued_rollout_says_it_waits_for_its_pool(backend: Backend, tmp_path: Path) -> None:
    backend.pool("paused", local_task("nap", _sleeper(tmp_path)), concurrency=0)
    rid = backend.rollout("paused", "nap")["rollout_id"]
    doc = ep.get_rollout(rid, **backend.conn)
    assert doc["status"] == "queued"
    assert doc["waiting"]["code"] == "pool_concurrency"
    assert "pool 'paused' runs 0 of its concurrency 0" in doc["waiting"]["message"]
    entry = _queue_entry(backend, "paused")
    assert entry["queued"] == 1 and entry["next"] == rid
    assert entry["waiting"]["code"] == "pool_concurrency"
    ep.cancel_rollout(rid, **backend.conn)
    assert "waiting" not in ep.get_rollout(rid, **backend.conn), "only queued rollouts wait"


def test_a_queued_rollout_says_it_waits_for_the_machine(
    one_at_a_time: Backend, tmp_path: Path
) -> None:
    backend = one_at_a_time
    backend.pool("p", local_task("nap", _sleeper(tmp_path)), concurrency=5)
    first = backend.rollout("p", "nap")["rollout_id"]
    backend.wait(first, "running")
    second = backend.rollout("p", "nap")["rollout_id"]
    waiting = ep.get_rollout(second, **backend.conn)["waiting"]
    assert waiting["code"] == "max_running", waiting
    assert "at most 1 rollouts at once" in waiting["message"]
    assert _queue_entry(backend, "p")["waiting"]["code"] == "max_running"
    ep.cancel_rollout(first, **backend.conn)
    backend.wait(second, "running")
    ep.cancel_rollout(second, **backend.conn)


@pytest.fixture
def two_cpus(tmp_path: Path) -> Iterator[Backend]:
    yield from _backend(tmp_path, cpu_overcommit=2.0 / usable_cores())


def test_cpus_a_task_asks_for_are_reserved(two_cpus: Backend, tmp_path: Path) -> None:
    """Capacity 2 cpus: a task asking for 2 runs alone; the next one waits for cpus."""
    backend = two_cpus
    heavy = _sleeper(tmp_path, "heavy", toml="[environment]\ncpus = 2\n")
    backend.pool("p", local_task("heavy", heavy), concurrency=4)
    first = backend.rollout("p", "heavy")["rollout_id"]
    assert ep.get_rollout(first, **backend.conn)["reservation"] == {"cpus": 2.0, "memory_mb": 512}
    backend.wait(first, "running")
    second = backend.rollout("p", "heavy")["rollout_id"]
    waiting = ep.get_rollout(second, **backend.conn)["waiting"]
    assert waiting["code"] == "machine_cpus", waiting
    assert "2 of 2 cpus reserved" in waiting["message"]
    for rid in (first, second):
        ep.cancel_rollout(rid, **backend.conn)


@pytest.fixture
def small_memory(tmp_path: Path) -> Iterator[Backend]:
    """Rollouts may reserve 3000 MB of this machine, whatever it has."""
    yield from _backend(tmp_path, memory_fraction=3000 / machine_memory_mb())


def test_memory_a_task_asks_for_is_reserved(small_memory: Backend, tmp_path: Path) -> None:
    backend = small_memory
    big = _sleeper(tmp_path, "big", toml="[environment]\nmemory_mb = 2000\n")
    small = _sleeper(tmp_path, "small")
    backend.pool("p", local_task("big", big), local_task("small", small), concurrency=4)
    first = backend.rollout("p", "big")["rollout_id"]
    backend.wait(first, "running")
    second = backend.rollout("p", "big")["rollout_id"]
    waiting = ep.get_rollout(second, **backend.conn)["waiting"]
    assert waiting["code"] == "machine_memory", waiting
    assert "2000 of" in waiting["message"] and "needs 2000 MB" in waiting["message"]
    # The first in line keeps its place: a small one behind it waits too (no starvation).
    third = backend.rollout("p", "small")["rollout_id"]
    assert ep.get_rollout(third, **backend.conn)["status"] == "queued"
    ep.cancel_rollout(first, **backend.conn)
    backend.wait(second, "running")
    backend.wait(third, "running")
    for rid in (second, third):
        ep.cancel_rollout(rid, **backend.conn)


def test_a_task_asking_for_more_memory_than_the_machine_has_is_refused_at_create(
    backend: Backend, tmp_path: Path
) -> None:
    asked = machine_memory_mb() * 4
    task = _sleeper(tmp_path, "huge", toml=f"[environment]\nmemory_mb = {asked}\n")
    backend.pool("p", local_task("huge", task))
    with pytest.raises(ep.ValidationError) as caught:
        backend.rollout("p", "huge")
    assert caught.value.code == "exceeds_capacity"
    assert f"memory_mb {asked}, more than this machine gives rollouts" in caught.value.message
    assert ep.list_rollouts(**backend.conn)["rollouts"] == [], "nothing was queued"
    request = {
        "task_ref": {"dataset": "tests", "task_id": "huge"},
        "agent": {"harness": "oracle"},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
    }
    verdict = ep.validate_rollout(request=request, **backend.conn)
    assert verdict["valid"] is False and verdict["error"]["code"] == "exceeds_capacity"
    # The pool task's resources count too (they override task.toml).
    pool_task = local_task("nap", _sleeper(tmp_path))
    pool_task.resources = ep.PoolResources(memory_mb=asked)
    backend.pool("q", pool_task)
    with pytest.raises(ep.ValidationError):
        backend.rollout("q", "nap")


def test_capabilities_and_queue_show_the_capacity(backend: Backend) -> None:
    caps = ep.get_capabilities(**backend.conn)
    scheduling = caps["scheduling"]
    assert scheduling["executor"] == "local"
    assert scheduling["cpu_overcommit"] == 8.0 and scheduling["max_running"] is None
    capacity = scheduling["capacity"]
    assert capacity["cores"] == usable_cores()
    assert capacity["cpus"] == usable_cores() * 8.0
    assert scheduling["runs_at_once"] == min(
        int(capacity["cpus"]), capacity["memory_mb"] // 512, capacity["open_files_rollouts"]
    )
    status = ep.get_queue_status(**backend.conn)
    assert status["runs_at_once"] == scheduling["runs_at_once"]
    assert status["scheduling"]["nodes"][0]["name"]
