"""The jobs commands as people and CI use them: flags, files, errors and exit codes."""

from __future__ import annotations

import json
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.settings import ServerSettings
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


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return make_suite(tmp_path / "suite")


# --- bad input: exit 2 before anything is created -------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one --agent"),
        (["--agent", "oracle"], "give the tasks: --tasks DIR"),
        (["--agent", "oracle", "--tasks", "/nonexistent"], "/nonexistent: not a directory"),
        (["--agent", "bad agent!", "--tasks", "."], "--agent expects AGENT or AGENT:MODEL"),
        (["--agent", "oracle", "--tasks", "{suite}", "--pool", "p"], "not both"),
        (["--agent", "oracle", "--tasks", "{suite}", "--include", "zz*"], "no task left"),
        (["--agent", "teleport", "--tasks", "{suite}"], "Unknown harness 'teleport'"),
        # The local backend takes any model id for codex, but not one no provider can have.
        (["--agent", "codex:/gpt-1", "--tasks", "{suite}"], "is not a model id"),
        (["--agent", "oracle", "--tasks", "{empty}"], "no Harbor tasks found"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(
    cli: CLI, backend: Backend, suite: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    filled = [a.format(suite=suite, empty=tmp_path / "empty") for a in args]
    result = cli("jobs", "run", *filled)
    assert result.code == 2, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert ep.list_pools(**backend.conn) == []
    assert cli("jobs", "list", "-o", "json").json() == []


def test_a_job_file_with_an_unknown_key_is_refused(
    cli: CLI, backend: Backend, tmp_path: Path
) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text("agents: [oracle]\ntasks: ./suite\nattempt: 3\n")
    result = cli("jobs", "run", "--from-file", str(job_file), "--json")
    assert result.code == 2
    error = json.loads(result.err)["error"]
    assert (
        error["code"] == "usage_error"
        and "attempt: Extra inputs are not permitted" in error["message"]
    )


def test_unknown_job_is_not_found(cli: CLI) -> None:
    result = cli("jobs", "show", "job-nope")
    assert result.code == 6 and "no job 'job-nope'" in result.err


# --- a job file, flags over it, filters, name lookup ----------------------------------------


def test_job_file_with_flag_overrides(cli: CLI, backend: Backend, suite: Path) -> None:
    job_file = suite.parent / "eval.yaml"
    job_file.write_text(
        "name: from-file\n"
        "tasks: suite\n"  # relative to the file
        "include: ['a*', 'b*', 'd*']\n"
        "exclude: ['bravo']\n"
        "agents:\n  - oracle\n  - {harness: nop}\n"
        "attempts: 1\n"
        "timeouts: {agent_sec: 30, verifier_sec: 20}\n"
    )
    result = cli("jobs", "run", "-f", str(job_file), "--attempts", "2", "-o", "json")
    assert result.code == 0, result.err
    job = result.json()["job"]
    assert job["name"] == "from-file" and job["attempts"] == 2 and job["tasks"] == 2
    groups = result.json()["result"]["groups"]
    assert sorted({g["task_id"] for g in groups}) == ["alpha", "delta-unsolvable"]
    docs = ep.list_rollouts(pool_id=job["pool_id"], limit=100, **backend.conn)["rollouts"]
    assert len(docs) == 2 * 2 * 2
    assert all(d["timeouts"] == {"agent_sec": 30, "verifier_sec": 20} for d in docs)
    assert all(d["task_ref"]["dataset"] == "from-file" for d in docs)
    # A job is found by its name too.
    shown = cli("jobs", "show", "from-file", "-o", "jsonl")
    lines = [json.loads(line) for line in shown.out.splitlines()]
    assert [line["scope"] for line in lines] == ["task"] * 4 + ["agent"] * 2


def test_existing_pool_mode(cli: CLI, backend: Backend, suite: Path) -> None:
    tasks = [ep.PoolTask.from_local(n, str(suite / n)).model_dump() for n in ("alpha", "echo-half")]
    ep.create_pool(
        request={"pool_id": "mine", "pool_type": "sandbox", "tasks": tasks}, **backend.conn
    )
    result = cli("jobs", "run", "--pool", "mine", "-a", "oracle", "-o", "json")
    assert result.code == 0, result.err
    job = result.json()["job"]
    assert job["pool_id"] == "mine" and job["tasks"] == 2 and job["passes"] == 1
    # Deleting the job leaves a pool it did not create alone.
    deleted = cli("jobs", "delete", job["id"], "--yes")
    assert deleted.code == 0
    assert ep.get_pool("mine", **backend.conn)["pool_id"] == "mine"


# --- CI: min pass rate, JUnit, compare ------------------------------------------------------


def test_min_pass_rate_and_junit(cli: CLI, backend: Backend, suite: Path, tmp_path: Path) -> None:
    report = tmp_path / "ci" / "junit.xml"
    args = ["jobs", "run", "--tasks", str(suite), "-a", "oracle", "-a", "nop", "-k", "2"]
    result = cli(*args, "--min-pass-rate", "0.5", "--junit", str(report), "-q")
    assert result.code == 5, result.err
    assert "nop: pass rate 0.0% is below --min-pass-rate 0.5" in result.err
    assert "oracle:" not in result.err  # 6/12 = 0.5 is not below
    job_id = result.out.strip()
    root = ET.parse(report).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    oracle = suites["suite [oracle]"]
    # The broken verifier is an error (no verdict), not one of the oracle's failures.
    assert (oracle.get("tests"), oracle.get("failures"), oracle.get("errors")) == ("6", "2", "1")
    cases = {c.get("name"): c for c in oracle.iter("testcase")}
    assert cases["alpha"].find("failure") is None
    assert cases["delta-unsolvable"].find("failure") is not None
    broken = cases["foxtrot-broken-verifier"]
    assert broken.find("failure") is None
    error = broken.find("error")
    assert error is not None and error.get("type") == "verifier:reward_missing"
    props = {p.get("name"): p.get("value") for p in broken.iter("property")}
    assert (props["errors"], props["errors_verifier"], props["attempts"]) == ("2", "2", "0")
    out = cases["alpha"].findtext("system-out") or ""
    assert out.count("attempt ") == 2 and "rollout=ro_" in out
    props = {p.get("name"): p.get("value") for p in cases["echo-half"].iter("property")}
    assert props["mean_reward"] == "0.5" and props["attempts"] == "2"

    passing = cli("jobs", "resume", job_id, "--min-pass-rate", "0")
    assert passing.code == 0

    better = cli("jobs", "run", "--tasks", str(suite), "-a", "oracle", "-a", "nop", "-k", "2",
                 "--name", "second", "-q")  # fmt: skip
    assert better.code == 0
    compared = cli("jobs", "compare", job_id, "second", "-o", "json").json()
    assert compared["counts"] == {"same": 10, "no verdict": 2}  # the broken verifier
    assert {t["agent"]: t["delta_pass_rate"] for t in compared["totals"]} == {
        "oracle": 0.0,
        "nop": 0.0,
    }


def test_compare_shows_newly_passing_and_failing(
    cli: CLI, backend: Backend, suite: Path, tmp_path: Path
) -> None:
    first = cli("jobs", "run", "--tasks", str(suite), "-a", "oracle", "--name", "before", "-q")
    # The same suite, except alpha is now broken and delta-unsolvable became solvable.
    (suite / "alpha" / "solution" / "solve.sh").write_text("#!/bin/bash\ntrue\n")
    (suite / "delta-unsolvable" / "solution" / "solve.sh").write_text(
        "#!/bin/bash\necho 42 > /app/answer.txt\n"
    )
    second = cli("jobs", "run", "--tasks", str(suite), "-a", "oracle", "--name", "after", "-q")
    assert first.code == second.code == 0
    result = cli("jobs", "compare", "before", "after")
    assert result.code == 0
    rows = {line.split()[0]: line.split() for line in result.out.splitlines() if line.strip()}
    assert rows["alpha"][-2:] == ["newly", "failing"]
    assert rows["delta-unsolvable"][-2:] == ["newly", "passing"]
    assert "1 newly passing, 1 newly failing" in result.err


# --- list, cancel, delete ---------------------------------------------------------------------


def test_cancel_a_running_job(
    cli: CLI, backend: Backend, tmp_path: Path, isolated_environment: Path
) -> None:
    slow = tmp_path / "slow"
    for name in ("one", "two", "three", "four"):
        make_task(slow, name, solve="sleep 30", test="echo 1 > /logs/verifier/reward.txt")
    process = envpools_process(
        "jobs", "run", "--tasks", str(slow), "-a", "oracle", "-k", "3", "-n", "2",
        env=backend.env(),
    )  # fmt: skip
    data = isolated_environment / "data"

    def running() -> bool:
        found = job_dirs(data)
        return bool(found) and sum(1 for r in records(found[0]) if r["rollout_id"]) >= 2

    try:
        wait_for(running, 60, "two rollouts to start")
        job_id = job_dirs(data)[0].name
        listed = cli("jobs", "list", "-o", "json").json()
        assert listed[0]["status"] == "running"
        deleting = cli("jobs", "delete", job_id, "--yes")
        assert deleting.code == 1 and "is running" in deleting.err
        cancelled = cli("jobs", "cancel", job_id)
        assert cancelled.code == 0, cancelled.err
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.communicate()
    assert process.returncode == 1, err
    assert "cancelled" in err
    recs = records(job_dirs(data)[0])
    launched = [r for r in recs if r["rollout_id"]]
    assert len(launched) == 2  # nothing launched after the cancel
    assert all(r["result"]["status"] == "cancelled" for r in launched)
    docs = backend.rollouts(job_id)
    assert [d["status"] for d in docs] == ["cancelled", "cancelled"]
    shown = cli("jobs", "show", job_id, "-o", "json").json()
    assert shown["job"]["status"] == "cancelled"
    assert all(t["attempts"] == 0 and t["cancelled"] == 2 for t in shown["result"]["totals"])

    deleted = cli("jobs", "delete", job_id, "--yes")
    assert deleted.code == 0, deleted.err
    assert job_dirs(data) == [] and ep.list_pools(**backend.conn) == []


def test_delete_needs_yes_when_not_interactive(cli: CLI, backend: Backend, suite: Path) -> None:
    ran = cli("jobs", "run", "--tasks", str(suite), "--include", "alpha", "-a", "nop", "-q")
    result = cli("jobs", "delete", ran.out.strip())
    assert result.code == 2 and "without --yes" in result.err


def test_rollouts_the_backend_refuses_leave_the_job_resumable(
    cli: CLI, backend: Backend, suite: Path
) -> None:
    from envpools_cli.jobs.lifecycle import create_job
    from envpools_cli.jobs.plan import AgentChoice
    from envpools_cli.jobs.spec import JobSpec
    from envpools_cli.jobs.store import JobStore

    store = JobStore()
    spec = JobSpec(agents=[AgentChoice("oracle")], tasks_dir=suite, include=["alpha", "bravo"])
    job = create_job(spec, store, backend.conn, profile=None)
    # The pool's policy changes under the job: every create is now refused (422).
    ep.update_pool(job.pool_id, request={"allowed_agents": ["nop"]}, **backend.conn)
    refused = cli("jobs", "resume", job.id)
    assert refused.code == 1, refused.err
    assert "alpha oracle #1: not launched: pool" in refused.err
    assert "does not allow agent 'oracle'" in refused.err
    assert (
        f"2 have no result (see the errors above). Try again with: envpools jobs resume {job.id}"
        in refused.err
    )
    assert cli("jobs", "list", "-o", "json").json()[0]["status"] == "interrupted"

    ep.update_pool(job.pool_id, request={"allowed_agents": []}, **backend.conn)
    fixed = cli("jobs", "resume", job.id, "-o", "json")
    assert fixed.code == 0, fixed.err
    assert fixed.json()["job"]["passes"] == 2


def test_resume_refuses_a_backend_without_the_job(
    cli: CLI, backend: Backend, suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = cli("jobs", "run", "--tasks", str(suite), "--include", "alpha", "-a", "nop", "-q")
    job_id = ran.out.strip()
    other = BackendThread(ServerSettings(data_dir=tmp_path / "other", heartbeat_sec=1.0)).start()
    try:
        _, key = other.create_key("pro", name="other")
        monkeypatch.setenv("ENVPOOLS_API_URL", other.url)
        monkeypatch.setenv("ENVPOOLS_API_KEY", key)
        result = cli("jobs", "resume", job_id)
    finally:
        other.stop()
    assert result.code == 2
    assert f"has no pool '{job_id}' for job {job_id}" in result.err
    assert ep.list_pools(**backend.conn)[0]["pool_id"] == job_id, "nothing made anywhere"


def test_resume_reuses_the_job_pool_even_once_deleted(
    cli: CLI, backend: Backend, suite: Path
) -> None:
    """The job's pool stays with the job: resume uses it, and makes it again (same id,
    same tasks) when it was deleted from the backend that holds the job's rollouts."""
    ran = cli("jobs", "run", "--tasks", str(suite), "--include", "alpha", "-a", "nop", "-q")
    job_id = ran.out.strip()
    assert [p["pool_id"] for p in ep.list_pools(**backend.conn)] == [job_id]
    again = cli("jobs", "resume", job_id, "-q")
    assert again.code == 0 and [p["pool_id"] for p in ep.list_pools(**backend.conn)] == [job_id]
    ep.delete_pool(job_id, **backend.conn)
    resumed = cli("jobs", "resume", job_id, "--retry-errors", "-o", "json")
    assert resumed.code == 0, resumed.err
    assert f"pool {job_id} of job {job_id} was gone; made it again" in resumed.err
    assert [t["task_id"] for t in ep.list_pool_tasks(job_id, **backend.conn)] == ["alpha"]


def test_delete_cancels_what_still_runs_and_removes_the_pool(
    cli: CLI, backend: Backend, tmp_path: Path
) -> None:
    slow = make_task(
        tmp_path / "slow", "sleepy", solve="sleep 60", test="echo 1 > /logs/verifier/reward.txt"
    )
    ran = cli("jobs", "run", "--tasks", str(slow), "-a", "oracle", "--timeout", "1", "-q")
    assert ran.code == 3, ran.err  # the rollout goes on
    job_id = ran.out.strip()
    assert [d["status"] for d in backend.rollouts(job_id)] != ["succeeded"]
    deleted = cli("jobs", "delete", job_id, "--yes")
    assert deleted.code == 0, deleted.err
    assert "was not deleted" not in deleted.err
    assert ep.list_pools(**backend.conn) == []
