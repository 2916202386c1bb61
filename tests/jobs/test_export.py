"""Trajectories as data: ``rollouts trajectory``, ``jobs export`` and ``rollouts export``.

A 3-task job (oracle and nop, one attempt) runs on a real local backend; its export is
read back the way a training pipeline reads it: the chat JSONL with a plain JSON Lines
reader and with pyarrow's JSON reader (the engine of ``datasets.load_dataset("json")``),
the Parquet file with pyarrow, the ATIF files with the ATIF model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.atif import Trajectory

from .conftest import CHECK_ANSWER, CLI, Backend, make_task

pyarrow = pytest.importorskip("pyarrow", reason="parquet export needs pyarrow (the test extra)")
import pyarrow.json as pa_json  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def three_tasks(root: Path) -> Path:
    make_task(root, "alpha", solve="echo 42 > /app/answer.txt", test=CHECK_ANSWER)
    make_task(root, "bravo", solve="echo 42 > /app/answer.txt", test=CHECK_ANSWER)
    make_task(root, "charlie", solve="echo 41 > /app/answer.txt", test=CHECK_ANSWER)
    return root


def run_job(cli: CLI, tmp_path: Path) -> dict[str, Any]:
    tasks = three_tasks(tmp_path / "tasks")
    result = cli("jobs", "run", "--tasks", str(tasks), "-a", "oracle", "-a", "nop", "-o", "json")
    assert result.code == 0, result.err
    job: dict[str, Any] = result.json()["job"]
    assert job["total"] == 6
    return job


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_jobs_trajectories_as_training_data(
    cli: CLI, backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = run_job(cli, tmp_path)

    # messages: one conversation per rollout, with its metadata
    out = tmp_path / "sft"
    result = cli("jobs", "export", job["id"], "--format", "messages", "-d", str(out))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [str(out / "messages.jsonl")]
    rows = jsonl(out / "messages.jsonl")
    assert len(rows) == 6
    for row in rows:
        meta = row["metadata"]
        assert meta["job_id"] == job["id"] and meta["attempt"] == 1
        assert meta["task_id"] in ("alpha", "bravo", "charlie")
        assert meta["agent"] in ("oracle", "nop") and meta["status"] == "succeeded"
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "user" and "Write 42" in row["messages"][0]["content"]
        if meta["agent"] == "oracle":
            assert roles == ["user", "assistant", "tool"]
            call = row["messages"][1]["tool_calls"][0]
            assert json.loads(call["function"]["arguments"]) == {
                "command": "bash /solution/solve.sh"
            }
            assert row["messages"][2]["tool_call_id"] == call["id"]
            assert meta["reward"] == (0.0 if meta["task_id"] == "charlie" else 1.0)
        else:
            assert roles == ["user", "assistant"] and meta["reward"] == 0.0
    # The reader behind datasets.load_dataset("json", ...) takes it as one table.
    table = pa_json.read_json(out / "messages.jsonl")
    assert table.num_rows == 6 and {"messages", "tools", "metadata"} <= set(table.column_names)

    # parquet, filtered: only what the oracle solved
    result = cli(
        "jobs", "export", job["id"], "--format", "parquet", "-d", str(out),
        "--min-reward", "1", "--agent", "oracle", "--status", "succeeded",
    )  # fmt: skip
    assert result.code == 0, result.err
    table = pq.read_table(out / "rollouts.parquet")
    assert table.num_rows == 2
    assert sorted(table.column("task_id").to_pylist()) == ["alpha", "bravo"]
    assert table.schema.field("reward").type == pyarrow.float64()
    assert table.schema.field("attempt").type == pyarrow.int64()
    first = table.to_pylist()[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "tool"]
    assert first["messages"][1]["tool_calls"][0]["function"]["name"] == "bash"
    Trajectory.model_validate_json(first["trajectory"])

    # atif: one document per rollout, the default folder named after the job
    result = cli("jobs", "export", job["id"], "--format", "atif", "--agent", "nop", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert len(summary["written"]) == 3 and summary["skipped"] == []
    for path in summary["files"]:
        assert Path(path).parent.name == f"{job['id']}-atif"
        assert Trajectory.model_validate_json(Path(path).read_text()).agent.name == "nop"

    # an export never overwrites silently, and bad flags are refused before any request
    again = cli("jobs", "export", job["id"], "-d", str(out))
    assert again.code == 2 and "use --overwrite" in again.err
    assert cli("jobs", "export", job["id"], "-d", str(out), "--overwrite").code == 0
    assert cli("jobs", "export", job["id"], "--format", "csv").code == 2
    assert cli("jobs", "export", job["id"], "--status", "happy").code == 2
    assert cli("jobs", "export", "no-such-job").code == 6


def test_rollouts_trajectory_and_export(cli: CLI, backend: Backend, tmp_path: Path) -> None:
    tasks = three_tasks(tmp_path / "tasks")
    pool = {
        "pool_id": "p",
        "pool_type": "sandbox",
        "tasks": [ep.PoolTask.from_local("alpha", str(tasks / "alpha")).model_dump()],
    }
    ep.create_pool(request=pool, **backend.conn)
    request = {
        "task_ref": {"dataset": "d", "task_id": "alpha"},
        "agent": {"harness": "oracle"},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
    }
    rid = ep.create_rollout(request=request, **backend.conn)["rollout_id"]
    ep.RolloutHandle(rid, **backend.conn).wait(timeout=60)

    shown = cli("rollouts", "trajectory", rid)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0].startswith(f"{rid} · oracle") and "succeeded" in lines[0]
    assert "#1 user" in lines and "#2 agent" in lines
    assert any(line.strip() == "→ bash: bash /solution/solve.sh" for line in lines)
    document = cli("rollouts", "trajectory", rid, "-o", "json").json()
    assert Trajectory.model_validate(document).trajectory_id == rid
    messages = cli("rollouts", "trajectory", rid, "-o", "messages").json()
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert cli("rollouts", "trajectory", rid, "-o", "yaml").code == 2
    missing = cli("rollouts", "trajectory", "ro_doesnotexist")
    assert missing.code == 6

    # A rollout that ended before its agent ran has no trajectory: exit 6, said plainly.
    broken = {**request, "pool_id": None, "environment": {"backend": "openenv"}}
    broken_id = ep.create_rollout(request=broken, **backend.conn)["rollout_id"]
    ep.RolloutHandle(broken_id, **backend.conn).wait(timeout=60)
    none = cli("rollouts", "trajectory", broken_id)
    assert none.code == 6 and "has no trajectory" in none.err

    out = tmp_path / "out"
    result = cli("rollouts", "export", rid, broken_id, "--format", "atif", "-d", str(out), "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["written"] == [rid]
    assert summary["skipped"][0]["rollout_id"] == broken_id
    assert "no trajectory" in summary["skipped"][0]["reason"]
    assert (out / f"{rid}.json").is_file() and "without a trajectory" in result.err
