"""A pool never runs more rollouts at once than its concurrency, however they arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from tests.integration.conftest import Backend, fast_session, local_task, make_task, start_backend

from .conftest import rollout_request, stored_events

ACTIVE = {"starting", "running", "verifying"}
LIMITS = {"pair": 2, "single": 1}
PER_POOL = 10


def _overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end and a start at one instant: no overlap)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _active_interval(events: list[dict[str, Any]]) -> tuple[datetime, datetime]:
    """From leaving the queue (``starting``) to the terminal lifecycle event."""
    marks = [e for e in events if e["event"] == "lifecycle" and "previous" in e["data"]]
    start = next(e for e in marks if e["data"]["status"] == "starting")
    return _when(start["timestamp"]), _when(marks[-1]["timestamp"])


@pytest.fixture
def roomy_backend(tmp_path: Path) -> Iterator[Backend]:
    """The machine-wide cap above the pools' sum, so that only the pools' limits bind."""
    thread = start_backend(tmp_path / "backend", max_running=sum(LIMITS.values()) + 2)
    org, key = thread.create_key("pro")
    session = fast_session()
    yield Backend(thread, key, org.org_id, session, tmp_path / "backend")
    session.close()
    thread.stop()


def test_pool_concurrency_is_never_exceeded_under_load(
    roomy_backend: Backend, tmp_path: Path
) -> None:
    backend = roomy_backend
    task = make_task(tmp_path, "nap", solve="echo start; sleep 0.5; echo done")
    for pool_id, limit in LIMITS.items():
        backend.pool(pool_id, local_task("nap", task), concurrency=limit)
    requests = [rollout_request(pool_id, "nap") for pool_id in LIMITS for _ in range(PER_POOL)]

    samples: dict[str, list[int]] = {pool_id: [] for pool_id in [*LIMITS, "metrics"]}
    listed: list[int] = []
    done = threading.Event()

    def sample() -> None:
        rounds = 0
        while not done.is_set():
            status = ep.get_queue_status(**backend.conn)
            running = {p["pool_id"]: p["running"] for p in status["pools"]}
            for pool_id in LIMITS:
                samples[pool_id].append(running.get(pool_id, 0))
            if rounds % 5 == 0:  # the same from the other side: the rollouts' statuses
                page = ep.list_rollouts(limit=500, **backend.conn)["rollouts"]
                by_pool = [r["pool_id"] for r in page if r["status"] in ACTIVE]
                listed.extend(by_pool.count(p) - LIMITS[p] for p in LIMITS)
                samples["metrics"].append(
                    ep.get_pool_metrics("pair", **backend.conn)["running"] - LIMITS["pair"]
                )
            rounds += 1
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(8) as pool:  # all twenty arrive at once
            created = list(
                pool.map(lambda r: ep.create_rollout(request=r, **backend.conn), requests)
            )
        finished = [backend.wait(r["rollout_id"], timeout=180) for r in created]
    finally:
        done.set()
        sampler.join(10)

    assert [r["status"] for r in finished] == ["succeeded"] * len(requests)
    for pool_id, limit in LIMITS.items():
        seen = samples[pool_id]
        assert len(seen) >= 30, f"only {len(seen)} samples of {pool_id}"
        assert max(seen) == limit, f"{pool_id}: ran {max(seen)} at once, limit {limit}"
        intervals = [
            _active_interval(stored_events(backend.conn, r["rollout_id"]))
            for r in created
            if r["pool_id"] == pool_id
        ]
        assert _overlap(intervals) <= limit, f"{pool_id}: the events show more than {limit}"
    assert max(listed) <= 0, "the rollout list showed a pool over its limit"
    assert max(samples["metrics"]) <= 0, "the pool's metrics showed it over its limit"
