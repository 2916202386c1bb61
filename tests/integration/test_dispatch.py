"""Dispatch cost does not grow with the queue (issue 20): the scheduler chooses the next
rollout from an in-memory index per pool, never by reading the queued rollouts.

The scheduler runs against the real store (SQLite) with an executor that only records
what it is handed: what is measured is the choice, not the trials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpools_cli.server.context import ServerContext
from envpools_cli.server.scheduling.admission import MachineCapacity
from envpools_cli.server.scheduling.executor import Executor
from envpools_cli.server.scheduling.scheduler import Scheduler
from envpools_cli.server.settings import ServerSettings
from envpools_cli.server.state.store import now_iso
from envpools_cli.server.trial.reporter import TrialInput


class Recording(Executor):
    name = "recording"

    def __init__(self, max_running: int | None = None) -> None:
        super().__init__()
        self.started: list[str] = []
        self.room = MachineCapacity(
            cpu_overcommit=1000, memory_fraction=1.0, max_running=max_running
        )

    def capacity(self) -> MachineCapacity:
        return self.room

    def start(self, trial: TrialInput) -> None:
        self.started.append(trial.rollout_id)

    def finish(self, rollout_id: str) -> None:
        self._ended(rollout_id)

    def cancel(self, rollout_id: str) -> bool:
        return False

    def stop(self, timeout: float) -> None:
        pass


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ServerContext]:
    context = ServerContext.create(ServerSettings(data_dir=tmp_path / "backend", sandbox="process"))
    yield context
    context.store.close()


def _queue(ctx: ServerContext, count: int, *, pool_id: str = "p", priority: int = 0) -> list[str]:
    ids = []
    with ctx.store.tx():
        for i in range(count):
            rollout_id = f"ro_{pool_id}_{priority}_{i:06d}"
            doc: dict[str, Any] = {
                "rollout_id": rollout_id,
                "org_id": "org",
                "pool_id": pool_id,
                "status": "queued",
                "priority": priority,
                "created_at": now_iso(),
                "task_ref": {"dataset": "d", "task_id": "t"},
                "reservation": {"cpus": 1, "memory_mb": 512},
                "padding": "x" * 2000,  # a document as big as a real one
            }
            ctx.store.insert_rollout(doc, {})
            ids.append(rollout_id)
    return ids


def _decodes_per_dispatch(
    ctx: ServerContext, monkeypatch: pytest.MonkeyPatch, queued: int
) -> tuple[int, list[str]]:
    ctx.store.put_pool("org", {"pool_id": "p", "pool_type": "sandbox", "concurrency": 5})
    ids = _queue(ctx, queued)
    executor = Recording()
    scheduler = Scheduler(ctx, executor)
    scheduler.recover()
    scheduler._load()
    calls = 0
    real = json.loads

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    scheduler._dispatch()
    monkeypatch.setattr(json, "loads", real)
    assert executor.started == ids[:5], "the five oldest, in order"
    return calls, executor.started


def test_dispatch_decodes_the_same_with_ten_or_five_thousand_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = []
    for queued in (10, 5000):
        ctx = ServerContext.create(
            ServerSettings(data_dir=tmp_path / f"b{queued}", sandbox="process")
        )
        try:
            counts.append(_decodes_per_dispatch(ctx, monkeypatch, queued)[0])
        finally:
            ctx.store.close()
    assert counts[0] == counts[1], f"JSON documents decoded per dispatch: {counts}"
    # Per launch: the claim, its event, the trial's inputs; the pool once a step.
    assert counts[0] <= 5 * 4 + 6, counts


def test_priorities_pools_and_cancels_in_the_index(ctx: ServerContext) -> None:
    for pool_id, limit in (("a", 2), ("b", 1)):
        ctx.store.put_pool(
            "org", {"pool_id": pool_id, "pool_type": "sandbox", "concurrency": limit}
        )
    low_a = _queue(ctx, 3, pool_id="a")
    high_b = _queue(ctx, 2, pool_id="b", priority=5)
    high_a = _queue(ctx, 1, pool_id="a", priority=9)
    executor = Recording()
    scheduler = Scheduler(ctx, executor)
    scheduler._load()
    scheduler.cancel(low_a[0])  # cancelled while queued: skipped, not launched
    scheduler._dispatch()
    assert executor.started == [high_a[0], high_b[0], low_a[1]], "priority first, pools' limits"
    assert scheduler.waiting(high_b[1])["code"] == "pool_concurrency"
    executor.finish(high_b[0])
    scheduler._dispatch()
    assert executor.started[-1] == high_b[1]
    assert scheduler.waiting(low_a[2])["code"] == "pool_concurrency"
    # A second load (a restart reads the database again) adds nothing twice.
    scheduler._load()
    executor.finish(high_a[0])
    scheduler._dispatch()
    assert executor.started[-1] == low_a[2] and len(executor.started) == 5
