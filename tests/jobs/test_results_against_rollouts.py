"""A whole eval on the local backend: every figure of the result table, recomputed from the
rollouts as the backend reports them (not from the job's own records)."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.conftest import CLI, Backend, make_suite

pytestmark = pytest.mark.sandbox

AGENTS = ("oracle", "nop")
ATTEMPTS = 3
Z = 1.959963984540054  # the 0.975 quantile of the standard normal


def brute_pass_at_k(outcomes: list[bool], k: int) -> float:
    """The share of all k-subsets of the attempts that hold at least one pass."""
    subsets = list(itertools.combinations(outcomes, k))
    return sum(1 for s in subsets if any(s)) / len(subsets)


def wilson(c: int, n: int) -> tuple[float, float]:
    p = c / n
    centre = (2 * n * p + Z**2) / (2 * (n + Z**2))
    half = Z * math.sqrt(Z**2 + 4 * n * p * (1 - p)) / (2 * (n + Z**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def expected_row(docs: list[dict[str, Any]]) -> dict[str, Any]:
    # An error (here: a verifier without a reward) reached no verdict: not an attempt.
    attempts = [d for d in docs if d["status"] not in ("cancelled", "error")]
    outcomes = [
        d["status"] == "succeeded" and d["reward_primary"] is not None and d["reward_primary"] >= 1
        for d in attempts
    ]
    n, c = len(outcomes), sum(outcomes)
    cost = sum(d["usage"]["cost_usd"] for d in docs)
    return {
        "attempts": n,
        "passes": c,
        "errors": sum(1 for d in docs if d["status"] == "error"),
        "failures": n - c,
        "pass_rate": c / n if n else None,
        "ci": wilson(c, n) if n else (None, None),
        "mean_reward": sum(d["reward_primary"] or 0.0 for d in attempts) / n if n else None,
        "mean_duration_sec": (
            sum(d["usage"]["wall_time_sec"] for d in attempts) / n if n else None
        ),
        "input_tokens": sum(d["usage"]["llm_input_tokens"] for d in docs),
        "output_tokens": sum(d["usage"]["llm_output_tokens"] for d in docs),
        "cost_usd": cost,
        "cost_per_success": cost / c if c else None,
        "outcomes": outcomes,
    }


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_every_figure_matches_the_rollouts(cli: CLI, backend: Backend, tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", coin=True)
    result = cli(
        "jobs", "run", "--tasks", str(suite), "--agent", "oracle", "--agent", "nop",
        "--attempts", str(ATTEMPTS), "--concurrency", "4", "--name", "figures", "-o", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "skipped 1 folder(s) that are not Harbor tasks: not-a-task" in result.err
    document = result.json()
    job, table = document["job"], document["result"]
    assert job["status"] == "finished" and job["ended"] == job["total"] == 7 * 2 * ATTEMPTS

    # The rollouts as the backend has them: exactly one per planned trial, tagged.
    docs = backend.rollouts(job["pool_id"])
    assert len(docs) == 7 * 2 * ATTEMPTS
    trials = [d["metadata"]["envpools_trial"] for d in docs]
    assert len(set(trials)) == len(trials)
    assert {d["metadata"]["envpools_job"] for d in docs} == {job["id"]}
    assert all(d["status"] in ("succeeded", "failed", "error") for d in docs)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        groups[(doc["task_ref"]["task_id"], doc["agent"]["harness"])].append(doc)

    # The suite does what it says, so the checks below cover every kind of row.
    broken = groups[("foxtrot-broken-verifier", "oracle")]
    assert {(d["status"], d["error"]["code"]) for d in broken} == {("error", "reward_missing")}
    assert all(d["reward_primary"] == 1.0 for d in groups[("alpha", "oracle")])
    assert all(d["reward_primary"] == 0.0 for d in groups[("delta-unsolvable", "oracle")])
    assert all(d["reward_primary"] == 0.5 for d in groups[("echo-half", "nop")])
    assert all(d["usage"]["cost_usd"] > 0 for d in docs)

    rows = {(r["task_id"], r["agent"]): r for r in table["groups"]}
    assert set(rows) == set(groups)
    for key, found in groups.items():
        row, want = rows[key], expected_row(found)
        assert row["attempts"] == want["attempts"], key
        assert want["attempts"] == (0 if key[0] == "foxtrot-broken-verifier" else ATTEMPTS)
        assert row["errors_by_kind"] == ({"verifier": ATTEMPTS} if want["errors"] else {})
        for name in ("passes", "errors", "failures", "input_tokens", "output_tokens"):
            assert row[name] == want[name], (key, name)
        for name in ("pass_rate", "mean_reward", "mean_duration_sec", "cost_usd"):
            assert close(row[name], want[name]), (key, name, row[name], want[name])
        assert close(row["cost_per_success"], want["cost_per_success"]), key
        assert close(row["ci_low"], want["ci"][0]) and close(row["ci_high"], want["ci"][1]), key
        if not want["attempts"]:
            assert row["pass_at_1"] is None and row["pass_at_k"] is None
            continue
        assert close(row["pass_at_1"], brute_pass_at_k(want["outcomes"], 1)), key
        assert close(row["pass_at_k"], brute_pass_at_k(want["outcomes"], ATTEMPTS)), key

    totals = {r["agent"]: r for r in table["totals"]}
    for agent in AGENTS:
        mine = [d for (task, harness), ds in groups.items() if harness == agent for d in ds]
        want = expected_row(mine)
        total = totals[agent]
        assert total["tasks"] == 6 and total["attempts"] == 6 * ATTEMPTS
        assert total["errors"] == ATTEMPTS and total["errors_by_kind"] == {"verifier": ATTEMPTS}
        assert total["passes"] == want["passes"]
        assert close(total["pass_rate"], want["pass_rate"])
        assert close(total["ci_low"], want["ci"][0]) and close(total["ci_high"], want["ci"][1])
        assert close(total["mean_reward"], want["mean_reward"])
        assert close(total["mean_duration_sec"], want["mean_duration_sec"])
        assert close(total["cost_usd"], want["cost_usd"])
        assert close(total["cost_per_success"], want["cost_per_success"])
        per_task = [
            brute_pass_at_k(expected_row(ds)["outcomes"], ATTEMPTS)
            for (task, harness), ds in groups.items()
            if harness == agent and expected_row(ds)["attempts"]
        ]
        assert close(total["pass_at_k"], sum(per_task) / len(per_task))
    assert totals["oracle"]["passes"] >= 9 and totals["nop"]["passes"] == 0

    # The table people read shows the same figures (plain text when piped).
    shown = cli("jobs", "show", job["id"])
    assert shown.code == 0, shown.err
    lines = [line.split("\t") for line in shown.out.splitlines() if line]
    header = lines[0]
    assert header[:7] == ["TASK", "AGENT", "PASS", "ERR", "PASS@1", f"PASS@{ATTEMPTS}", "95% CI"]
    body = {(cells[0], cells[1]): dict(zip(header, cells, strict=True)) for cells in lines[1:15]}
    for key, found in groups.items():
        want = expected_row(found)
        cells = body[key]
        missing = "+" if want["attempts"] < ATTEMPTS else ""
        assert cells["PASS"] == f"{want['passes']}/{want['attempts']}{missing}"
        assert cells["ERR"] == (str(want["errors"]) if want["errors"] else "-")
        if not want["attempts"]:
            continue
        assert cells[f"PASS@{ATTEMPTS}"] == f"{brute_pass_at_k(want['outcomes'], ATTEMPTS):.2f}"
        assert cells["95% CI"] == f"{want['ci'][0]:.2f}-{want['ci'][1]:.2f}"
        assert cells["REWARD"] == f"{want['mean_reward']:.2f}"

    # CSV carries every figure unrounded.
    exported = cli("jobs", "show", job["id"], "-o", "csv")
    csv_rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert len(csv_rows) == 7 * 2 + 2
    first = next(r for r in csv_rows if r["scope"] == "task" and r["task_id"] == "echo-half")
    assert float(first["mean_reward"]) == 0.5 and first["passes"] == "0"

    # Per rollout: the records name the same rollouts the backend has.
    listed = cli("jobs", "show", job["id"], "--rollouts", "-o", "json").json()
    assert sorted(r["rollout_id"] for r in listed) == sorted(d["rollout_id"] for d in docs)
