"""A job survives SIGKILL: `jobs resume` finishes it without launching any rollout twice,
and its result table is the one an uninterrupted run produces."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.jobs.plan import AgentChoice
from envpools_cli.jobs.run import rollout_request
from envpools_cli.jobs.spec import JobSpec
from envpools_cli.jobs.store import JobStore
from tests.jobs.conftest import (
    CLI,
    Backend,
    envpools_process,
    job_dirs,
    make_suite,
    make_task,
    records,
    wait_for,
)

pytestmark = pytest.mark.sandbox

ATTEMPTS = 3
PLANNED = 6 * 2 * ATTEMPTS
#: Duration and the sandbox cost that follows it differ from run to run; every other
#: figure is determined by the tasks.
TIME_BOUND = {"mean_duration_sec", "cost_usd", "cost_usd_known", "cost_per_success"}


def comparable(table: dict[str, Any]) -> dict[str, Any]:
    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in TIME_BOUND} for r in rows]

    return {"groups": strip(table["groups"]), "totals": strip(table["totals"])}


def test_sigkill_then_resume_runs_each_rollout_once(
    cli: CLI, backend: Backend, tmp_path: Path, isolated_environment: Path
) -> None:
    suite = make_suite(tmp_path / "suite", delay=0.3)
    args = ["--tasks", str(suite), "--agent", "oracle", "--agent", "nop", "-k", str(ATTEMPTS)]
    process = envpools_process(
        "jobs", "run", *args, "--concurrency", "4", "--name", "killed", env=backend.env()
    )
    data = isolated_environment / "data"

    def halfway() -> bool:
        found = job_dirs(data)
        if not found:
            return False
        recs = records(found[0])
        ended = sum(1 for r in recs if r["result"])
        in_flight = sum(1 for r in recs if r["rollout_id"] and not r["result"])
        return ended >= PLANNED // 2 and in_flight >= 1

    try:
        wait_for(halfway, 120, "the job to get halfway")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    job_dir = job_dirs(data)[0]
    before = records(job_dir)
    assert PLANNED // 2 <= sum(1 for r in before if r["result"]) < PLANNED
    in_flight = {r["rollout_id"] for r in before if r["rollout_id"] and not r["result"]}
    assert in_flight

    listed = cli("jobs", "list", "-o", "json").json()
    assert [(j["id"], j["status"]) for j in listed] == [(job_dir.name, "interrupted")]

    resumed = cli("jobs", "resume", job_dir.name, "-o", "json")
    assert resumed.code == 0, resumed.err
    assert "already ended" in resumed.err
    after = records(job_dir)
    assert len(after) == PLANNED and all(r["result"] for r in after)
    # The rollouts that were running when the process died were followed, not replaced.
    assert in_flight <= {r["rollout_id"] for r in after}

    docs = backend.rollouts(resumed.json()["job"]["pool_id"])
    assert len(docs) == PLANNED
    trials = [d["metadata"]["envpools_trial"] for d in docs]
    assert len(set(trials)) == PLANNED
    assert sorted(d["rollout_id"] for d in docs) == sorted(r["rollout_id"] for r in after)

    again = cli("jobs", "resume", job_dir.name, "-o", "json")
    assert again.code == 0 and len(backend.rollouts(job_dir.name)) == PLANNED

    fresh = cli("jobs", "run", *args, "--name", "uninterrupted", "-o", "json")
    assert fresh.code == 0, fresh.err
    assert comparable(resumed.json()["result"]) == comparable(fresh.json()["result"])


def test_a_create_lost_in_a_crash_is_not_repeated(
    cli: CLI, backend: Backend, tmp_path: Path
) -> None:
    """The process dies after the backend created a rollout, before its record was written:
    the resumed create carries the same Idempotency-Key and gets that rollout back."""
    from envpools_cli.jobs.lifecycle import create_job

    suite = make_suite(tmp_path / "suite")
    store = JobStore()
    spec = JobSpec(agents=[AgentChoice("oracle")], tasks_dir=suite, attempts=2)
    job = create_job(spec, store, backend.conn, profile=None)
    first = job.trials()[0]
    orphan = ep.create_rollout(
        request=rollout_request(job, first),
        idempotency_key=first.idempotency_key(job.id),
        **backend.conn,
    )
    result = cli("jobs", "resume", job.id, "-o", "json")
    assert result.code == 0, result.err
    docs = backend.rollouts(job.pool_id)
    assert len(docs) == job.total == 12
    recorded = store.records(job)[first.key]
    assert recorded.rollout_id == orphan["rollout_id"]
    assert recorded.result is not None and recorded.result.status == "succeeded"


def _slow_suite(root: Path, sleep: float = 1) -> Path:
    for name in ("one", "two", "three"):
        make_task(root, name, solve=f"sleep {sleep:g}", test="echo 1 > /logs/verifier/reward.txt")
    return root


def test_ctrl_c_and_timeout_leave_a_resumable_job(
    cli: CLI, backend: Backend, tmp_path: Path, isolated_environment: Path
) -> None:
    suite = _slow_suite(tmp_path / "slow")
    data = isolated_environment / "data"
    process = envpools_process(
        "jobs", "run", "--tasks", str(suite), "-a", "oracle", "-k", "2", "-n", "2",
        env=backend.env(),
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                bool(job_dirs(data)) and any(r["rollout_id"] for r in records(job_dirs(data)[0]))
            ),
            60,
            "a rollout to start",
        )
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    job_id = job_dirs(data)[0].name
    assert f"interrupted. Continue with: envpools jobs resume {job_id}" in err
    assert "Traceback" not in err

    timed = cli("jobs", "resume", job_id, "--timeout", "0.5")
    assert timed.code == 3, timed.err
    assert "--timeout reached" in timed.err
    assert cli("jobs", "list", "-o", "json").json()[0]["status"] == "interrupted"

    done = cli("jobs", "resume", job_id, "-o", "json")
    assert done.code == 0, done.err
    assert done.json()["job"]["passes"] == 6
    assert len(backend.rollouts(job_id)) == 6


def test_resume_after_the_backend_restarted(
    cli: CLI, tmp_path: Path, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reboot: the job's process and the backend die together. The restarted backend
    ends the rollouts it was running in error (backend_restarted); resume runs those
    trials again and keeps the ids of the rollouts they replace."""
    from envpools_cli.server.serve import BackendThread
    from envpools_cli.server.settings import ServerSettings

    # Long enough that a rollout seen running is still running when the backend stops (with
    # 1 s, one of the two could finish in between on a loaded machine).
    suite = _slow_suite(tmp_path / "slow", sleep=4)
    settings = ServerSettings(data_dir=tmp_path / "backend", heartbeat_sec=1.0, max_running=4)
    first = BackendThread(settings).start()
    _, key = first.create_key("pro", name="reboot")
    env = Backend(first, key).env()
    process = envpools_process(
        "jobs", "run", "--tasks", str(suite), "-a", "oracle", "-k", "2", "-n", "2", env=env
    )
    data = isolated_environment / "data"

    def running() -> set[str]:
        found = job_dirs(data)
        ids = [r["rollout_id"] for r in records(found[0]) if r["rollout_id"]] if found else []
        docs = [ep.get_rollout(i, backend_base=first.url, api_key=key) for i in ids]
        return {d["rollout_id"] for d in docs if d["status"] == "running"}

    try:
        wait_for(lambda: len(running()) >= 2, 60, "two rollouts to run")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        first.stop()
    job_dir = job_dirs(data)[0]
    launched = {r["rollout_id"] for r in records(job_dir) if r["rollout_id"]}

    second = BackendThread(settings).start()  # the same data, likely another port
    try:
        monkeypatch.setenv("ENVPOOLS_API_URL", second.url)
        monkeypatch.setenv("ENVPOOLS_API_KEY", key)
        docs = [ep.get_rollout(i, backend_base=second.url, api_key=key) for i in launched]
        cut_short = {d["rollout_id"] for d in docs if d["status"] == "error"}
        assert len(cut_short) >= 2
        assert {d["error"]["code"] for d in docs if d["status"] == "error"} == {"backend_restarted"}
        resumed = cli("jobs", "resume", job_dir.name, "-o", "json")
        assert resumed.code == 0, resumed.err
        after = records(job_dir)
        assert all(r["result"]["status"] == "succeeded" for r in after)
        assert {i for r in after for i in r["replaced"]} == cut_short
        assert not cut_short & {r["rollout_id"] for r in after}
        all_docs = Backend(second, key).rollouts(job_dir.name)
        assert len(all_docs) == 6 + len(cut_short)
        assert resumed.json()["job"]["passes"] == 6
    finally:
        second.stop()
