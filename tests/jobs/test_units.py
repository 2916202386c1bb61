"""The parts of jobs that need no backend: estimators, plans, files, records."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envpools_cli.jobs.plan import AgentChoice, PlanError, Trial, parse_agent, select_tasks, trials
from envpools_cli.jobs.spec import load_job_file, resolve_spec
from envpools_cli.jobs.stats import compare, compute, pass_at_k, wilson_interval
from envpools_cli.jobs.store import Job, JobBusy, JobStore, Record, Result, write_json_atomic


def brute(n: int, c: int, k: int) -> float:
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(1 for s in subsets if any(outcomes[i] for i in s)) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_is_the_share_of_k_subsets_with_a_pass(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert math.isclose(pass_at_k(n, c, k) or 0.0, brute(n, c, k), abs_tol=1e-12)
        assert pass_at_k(n, c, n + 1) is None
    assert pass_at_k(n, 0, 1) == 0.0 and pass_at_k(n, n, 1) == 1.0


def test_wilson_interval_known_values() -> None:
    # Worked out by hand from the closed form (z = 1.959964): 0/3, 9/18 and 3/3.
    low, high = wilson_interval(0, 3) or (0, 0)
    assert low == 0.0 and math.isclose(high, 0.561497, abs_tol=1e-6)
    low, high = wilson_interval(9, 18) or (0, 0)
    assert math.isclose(low, 0.290310, abs_tol=1e-6) and math.isclose(high, 0.709690, abs_tol=1e-6)
    low, high = wilson_interval(3, 3) or (0, 0)
    assert math.isclose(low, 0.438503, abs_tol=1e-6) and high == 1.0
    assert wilson_interval(0, 0) is None


def result(task: str, agent: str, attempt: int, status: str, reward: float | None,
           **extra: object) -> Result:  # fmt: skip
    return Result(task_id=task, agent=agent, model=None, attempt=attempt, rollout_id=None,
                  status=status, reward=reward, **extra)  # fmt: skip


def test_compute_counts_errors_cancellations_tokens_and_cost() -> None:
    verifier = {"code": "reward_missing", "message": "no reward"}
    rows = [
        result("t", "a", 1, "succeeded", 1.0, input_tokens=100, output_tokens=10, cost_usd=0.5),
        result("t", "a", 2, "succeeded", 0.4, cost_usd=0.25, duration_sec=2.0, cache_tokens=7),
        result("t", "a", 3, "error", None, cost_usd=0.25, duration_sec=4.0, error=verifier),
        result("t", "a", 4, "cancelled", None, cost_usd=1.0),
        result("u", "a", 1, "failed", None, error={"code": "agent_timeout"}),
    ]
    stats = compute(
        rows, task_ids=["t", "u"], agents=[AgentChoice("a")], attempts=4, pass_reward=1.0
    )
    t, u = stats.groups
    assert (u.attempts, u.failures, u.errors, u.mean_reward) == (1, 1, 0, 0.0)
    # The error reached no verdict: counted apart, in no rate, mean or time.
    assert (t.attempts, t.passes, t.errors, t.failures, t.cancelled) == (2, 1, 1, 1, 1)
    assert t.errors_by_kind == {"verifier": 1} and t.transient_errors == 0
    assert math.isclose(t.mean_reward or 0, 1.4 / 2) and t.mean_duration_sec == 2.0
    assert t.cost_usd == 2.0 and t.cost_per_success == 2.0 and t.input_tokens == 100
    assert t.cache_tokens == 7
    assert t.pass_at_k is None  # 2 attempts cannot estimate pass@4
    assert math.isclose(t.pass_at_1 or 0, 1 / 2)
    total = stats.totals[0]
    assert (total.tasks, total.attempts, total.passes, total.planned) == (2, 3, 1, 8)
    assert (total.errors, total.cache_tokens) == (1, 7)
    assert math.isclose(total.pass_at_1 or 0, (1 / 2 + 0) / 2)
    lower = compute(
        rows, task_ids=["t", "u"], agents=[AgentChoice("a")], attempts=4, pass_reward=0.4
    )
    assert lower.groups[0].passes == 2


def test_errors_by_kind_and_unknown_cost() -> None:
    """A provider's 429 and a restart are transient; a model without a price makes the
    cost unknown (None, never 0), with what is known kept apart."""
    rows = [
        result("t", "codex", 1, "error", None, error={"code": "provider_rate_limited"}),
        # A backend that reports a provider failure as `failed` still counts an error.
        result("t", "codex", 2, "failed", None, error={"code": "provider_auth"}),
        result("t", "codex", 3, "error", None, error={"code": "backend_restarted"}),
        result("t", "codex", 4, "error", None, error={"code": "something_new"}),
        result(
            "t",
            "codex",
            5,
            "succeeded",
            1.0,
            cost_usd=None,
            input_tokens=50,
            model_used="stub-model",
            unpriced_models=["stub-model"],
        ),
        result("t", "codex", 6, "succeeded", 0.0, cost_usd=0.5, model_used="stub-model"),
    ]
    stats = compute(
        rows, task_ids=["t"], agents=[AgentChoice("codex")], attempts=6, pass_reward=1.0
    )
    row = stats.groups[0]
    assert (row.attempts, row.passes, row.failures, row.errors) == (2, 1, 1, 4)
    assert row.errors_by_kind == {"provider": 2, "infrastructure": 2}
    assert row.transient_errors == 2  # the 429 and the restart
    assert row.cost_usd is None and row.cost_usd_known == 0.5 and row.cost_per_success is None
    assert (row.unpriced_rollouts, row.unpriced_models) == (1, ["stub-model"])
    assert row.models_used == ["stub-model"]
    document = stats.to_dict()
    assert document["errors"] == 4 and document["transient_errors"] == 2
    assert document["errors_by_kind"] == {"provider": 2, "infrastructure": 2}
    assert document["unpriced_models"] == ["stub-model"]
    assert document["totals"][0]["cost_usd"] is None


def test_a_result_keeps_the_model_used_and_an_unknown_cost() -> None:
    trial = Trial("t", AgentChoice("codex"), 1)
    doc = {"rollout_id": "ro_1", "status": "succeeded", "reward_primary": 1.0,
           "agent": {"harness": "codex"}}  # fmt: skip
    usage = {"llm_input_tokens": 10, "llm_output_tokens": 2, "llm_cache_tokens": 4,
             "cost_usd": None, "model_id": "stub-model", "unpriced_models": ["stub-model"]}  # fmt: skip
    found = Result.from_rollout(trial, doc, usage)
    assert (found.cost_usd, found.model_used, found.cache_tokens) == (None, "stub-model", 4)
    assert found.model is None, "the model asked for stays what the trial asked"
    free = Result.from_rollout(trial, doc, {"cost_usd": None})
    assert free.cost_usd == 0.0, "nothing spent that could have a price"
    priced = Result.from_rollout(trial, doc, {"llm_input_tokens": 10, "cost_usd": 0.01})
    assert priced.cost_usd == 0.01


def test_compare_classifies_changes() -> None:
    a = compute([result("t", "x", 1, "succeeded", 1.0), result("u", "x", 1, "succeeded", 0.0)],
                task_ids=["t", "u", "v"], agents=[AgentChoice("x")], attempts=1, pass_reward=1)  # fmt: skip
    b = compute([result("t", "x", 1, "succeeded", 0.0), result("u", "x", 1, "succeeded", 1.0),
                 result("v", "x", 1, "succeeded", 1.0)],
                task_ids=["t", "u", "v"], agents=[AgentChoice("x")], attempts=1, pass_reward=1)  # fmt: skip
    changes = {r["task_id"]: r["change"] for r in compare(a, b).rows}
    assert changes == {"t": "newly failing", "u": "newly passing", "v": "only in B"}


def test_agents_globs_and_trial_order() -> None:
    assert parse_agent("codex:gpt-5.1-codex-mini") == AgentChoice("codex", "gpt-5.1-codex-mini")
    assert parse_agent("x:provider/model:tag").model == "provider/model:tag"
    with pytest.raises(PlanError):
        parse_agent(":model")
    assert select_tasks(["a1", "a2", "b1"], ["a*"], ["*2"]) == ["a1"]
    plan = list(trials(["t1", "t2"], [AgentChoice("a"), AgentChoice("b")], 2))
    assert [(t.attempt, t.task_id, t.agent.harness) for t in plan[:4]] == [
        (1, "t1", "a"), (1, "t1", "b"), (1, "t2", "a"), (1, "t2", "b"),
    ]  # fmt: skip
    keys = {t.idempotency_key("job-1") for t in plan}
    assert len(keys) == len(plan) and len({t.filename for t in plan}) == len(plan)
    odd = Trial("weird/../name with spaces", AgentChoice("a", "m/x"), 1)
    assert "/" not in odd.filename and odd.filename.endswith(".json")


def test_spec_flags_override_the_file(tmp_path: Path) -> None:
    file = load_job_file(
        {"tasks": "suite", "agents": ["oracle"], "attempts": 2, "concurrency": 3,
         "pass_reward": 0.0, "junit": "out/j.xml"}, "job.yaml"
    )  # fmt: skip
    spec = resolve_spec(file, tmp_path, {"attempts": 5, "agents": None, "pass_reward": None})
    assert spec.attempts == 5 and spec.concurrency == 3 and spec.pass_reward == 0.0
    assert spec.tasks_dir == (tmp_path / "suite").resolve()
    assert spec.junit == tmp_path / "out/j.xml"
    assert spec.agents == [AgentChoice("oracle")]
    with pytest.raises(PlanError, match="min-pass-rate"):
        resolve_spec(file, tmp_path, {"min_pass_rate": 2})
    with pytest.raises(PlanError, match=r"agents\.0"):
        load_job_file({"agents": [{"model": "x"}]}, "job.yaml")


def _job(tmp_path: Path) -> tuple[JobStore, Job]:
    store = JobStore(tmp_path / "jobs")
    job = Job(
        id="job-1", name="n", created_at="now", backend_base="http://x", api_version=None,
        profile=None, pool_id="p", pool_created=True, dataset="d", task_ids=["t"],
        task_paths={}, agents=[AgentChoice("a")], attempts=2, concurrency=1, timeouts={},
    )  # fmt: skip
    return store, store.create(job)


def test_records_round_trip_and_torn_files_are_ignored(tmp_path: Path) -> None:
    store, job = _job(tmp_path)
    first, second = job.trials()
    store.save(job, Record(first, "ro_1", "t0", result("t", "a", 1, "succeeded", 1.0)))
    store.save(job, Record(second, "ro_2", "t1"))
    (job.folder / "trials" / "garbage.json").write_text('{"trial": ')
    loaded = store.records(job)
    assert loaded[first.key].result == result("t", "a", 1, "succeeded", 1.0,
                                              recorded_at=loaded[first.key].result.recorded_at)  # fmt: skip
    assert loaded[second.key].rollout_id == "ro_2" and loaded[second.key].result is None
    assert store.status(job) == "interrupted"
    assert [p.name for p in (job.folder / "trials").iterdir() if p.name.startswith(".")] == []


def test_atomic_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_json_atomic(target, {"a": 1})
    code = (
        "import os, sys\n"
        "from envpools_cli.jobs.store import write_json_atomic\n"
        "from pathlib import Path\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), 9)\n"  # die before the rename
        f"write_json_atomic(Path({str(target)!r}), {{'a': 2}})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert json.loads(target.read_text()) == {"a": 1}


def test_the_run_lock_is_exclusive_and_released_by_death(tmp_path: Path) -> None:
    store, job = _job(tmp_path)
    with store.lock(job):
        assert store.running_pid(job) == os.getpid()
        assert store.status(job) == "running"
        with pytest.raises(JobBusy), store.lock(job):
            pass
    assert store.running_pid(job) is None
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(job.folder / "run.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert store.running_pid(job) is not None
    holder.kill()
    holder.wait()
    assert store.running_pid(job) is None


def test_a_timeout_under_load_is_an_error_worth_retrying_not_a_failure() -> None:
    """The machine starved the agent (issue 22): infrastructure, transient; a memory limit
    the task's sandbox went over is the run's own failure."""
    under_load = {"code": "timeout_under_load", "under_load": True}
    rows = [
        result("t", "opencode", 1, "error", None, error=under_load),
        result("t", "opencode", 2, "failed", None, error={"code": "memory_limit"}),
        result("t", "opencode", 3, "succeeded", 1.0),
    ]
    stats = compute(
        rows, task_ids=["t"], agents=[AgentChoice("opencode")], attempts=3, pass_reward=1.0
    )
    row = stats.groups[0]
    assert (row.attempts, row.passes, row.failures, row.errors) == (2, 1, 1, 1)
    assert row.errors_by_kind == {"infrastructure": 1} and row.transient_errors == 1
