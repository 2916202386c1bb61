"""One machine at its default settings runs as many LLM-bound rollouts as its cores x CPU
overcommit allow, and `jobs run -n` above that says so once (issue 20)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from envpools_cli.server.scheduling.admission import MachineCapacity
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.settings import ServerSettings
from tests.jobs.conftest import CLI, Backend, make_task

pytestmark = pytest.mark.sandbox


def _t(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _most_at_once(docs: list[dict[str, str]]) -> int:
    """Rollouts running at once, as the backend recorded them (started -> finished)."""
    spans = [(_t(d["started_at"]), _t(d["finished_at"])) for d in docs]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def _default_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    settings = ServerSettings.from_env(tmp_path / "backend")  # nothing set: the defaults
    thread = BackendThread(settings).start()
    _, key = thread.create_key("pro", name="scale")
    monkeypatch.setenv("ENVPOOLS_API_URL", thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", key)
    yield Backend(thread, key)
    thread.stop()


@pytest.fixture
def default_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    yield from _default_backend(tmp_path, monkeypatch)


def test_sixteen_sleeping_rollouts_run_at_once_by_default(
    cli: CLI, default_backend: Backend, tmp_path: Path
) -> None:
    room = MachineCapacity(cpu_overcommit=8.0, memory_fraction=0.8).runs_at_once()[0]
    if room < 16:
        pytest.skip(f"this machine runs {room} default-sized rollouts at once, not 16")
    task = make_task(
        tmp_path / "tasks",
        "nap",
        solve="sleep 5; echo 42 > /app/answer.txt",
        test="echo 1 > /logs/verifier/reward.txt",
    )
    ran = cli("jobs", "run", "--tasks", str(task.parent), "-a", "oracle", "-k", "16", "-n", "16")
    assert ran.code == 0, ran.err
    assert "at most" not in ran.err, "16 fit: nothing to warn about"
    docs = [d for d in default_backend.rollouts(_pool_of(default_backend)) if d["started_at"]]
    assert len(docs) == 16 and all(d["status"] == "succeeded" for d in docs)
    assert _most_at_once(docs) == 16


def _pool_of(backend: Backend) -> str:
    from envpools_cli import client as ep

    (pool,) = [p for p in ep.list_pools(**backend.conn) if "envpools-job" in (p.get("tags") or [])]
    return str(pool["pool_id"])


@pytest.fixture
def capped_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    monkeypatch.setenv("ENVPOOLS_MAX_RUNNING", "2")
    yield from _default_backend(tmp_path, monkeypatch)


def test_jobs_run_says_once_when_n_is_above_what_the_backend_runs(
    cli: CLI, capped_backend: Backend, tmp_path: Path
) -> None:
    task = make_task(
        tmp_path / "tasks",
        "quick",
        solve="echo 42 > /app/answer.txt",
        test="echo 1 > /logs/verifier/reward.txt",
    )
    ran = cli("jobs", "run", "--tasks", str(task.parent), "-a", "oracle", "-k", "4", "-n", "4")
    assert ran.code == 0, ran.err
    notes = [line for line in ran.err.splitlines() if "at most" in line]
    assert len(notes) == 1, ran.err
    assert re.search(r"-n 4: the backend runs at most 2 rollouts at once", notes[0]), notes
    assert "--max-running" in notes[0], "the knob to turn"
    docs = capped_backend.rollouts(_pool_of(capped_backend))
    assert _most_at_once(docs) == 2
