"""Eval throughput: `envpools jobs run` against a loop of the official SDK, one backend.

    .venv/bin/python bench/jobs.py [--rollouts 200] [--sdk-rollouts 20] [--concurrency 8]

Both sides run `nop` rollouts of the same tiny Harbor tasks on one local backend
(started here on port 0, real sandboxes):

1. jobs: the `envpools jobs run --tasks DIR --agent nop -k K` command as a process, timed
   from its start to its exit (interpreter start, pool creation and result table included);
2. sdk: the official SDK (``synth_ai.sdk.environment_pools`` in .venv-sdk), in a process of
   its own, looping ``create_rollout`` + ``RolloutHandle(id).wait()``, one rollout after the
   other, timed around the loop only (its interpreter start is not counted). ``wait`` is
   run as shipped (it polls every 2 s) and again with ``poll_interval=0.05``, the fastest
   loop the SDK can be told to run.

A sequential loop's rate does not depend on how many rollouts it runs, so the SDK side
runs fewer (``--sdk-rollouts``) to keep the benchmark short; the figures are rollouts/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envpools_cli.server.serve import BackendThread  # noqa: E402
from envpools_cli.server.settings import ServerSettings  # noqa: E402

SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"

SDK_LOOP = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from synth_ai.sdk import environment_pools as ep
count, pool, task, poll = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
request = {"task_ref": {"dataset": "bench", "task_id": task}, "agent": {"harness": "nop"},
           "pool_id": pool, "task_app_id": "", "timeouts": {"agent_sec": 60}}
statuses = []
started = time.perf_counter()
for _ in range(count):
    created = ep.create_rollout(request=dict(request))
    handle = ep.RolloutHandle(created["rollout_id"])
    done = handle.wait(timeout=300) if poll == "default" else handle.wait(
        timeout=300, poll_interval=float(poll))
    statuses.append(done["status"])
elapsed = time.perf_counter() - started
print(json.dumps({"elapsed": elapsed, "statuses": statuses}))
"""


def make_tasks(root: Path, count: int) -> Path:
    for index in range(count):
        task = root / f"task-{index:02d}"
        (task / "environment").mkdir(parents=True)
        (task / "solution").mkdir()
        (task / "tests").mkdir()
        (task / "instruction.md").write_text("Nothing to do.\n")
        (task / "task.toml").write_text('version = "1.0"\n')
        (task / "environment" / "Dockerfile").write_text("FROM scratch\nWORKDIR /app\n")
        (task / "solution" / "solve.sh").write_text("#!/bin/bash\ntrue\n")
        (task / "tests" / "test.sh").write_text("#!/bin/bash\necho 0 > /logs/verifier/reward.txt\n")
    return root


def run_job(
    url: str, key: str, tasks: Path, data: Path, rollouts: int, task_count: int, concurrency: int
) -> dict[str, Any]:
    attempts = max(1, rollouts // task_count)
    env = {
        **os.environ,
        "ENVPOOLS_API_URL": url,
        "ENVPOOLS_API_KEY": key,
        "ENVPOOLS_DATA_DIR": str(data),
        "ENVPOOLS_CONFIG_DIR": str(data / "config"),
        "ENVPOOLS_KEYRING": "file",
    }
    command = [
        *(sys.executable, "-m", "envpools_cli", "jobs", "run", "--tasks", str(tasks)),
        *("--agent", "nop", "-k", str(attempts), "-n", str(concurrency), "-o", "json"),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"jobs run failed ({done.returncode}): {done.stderr[-2000:]}")
    job = json.loads(done.stdout)["job"]
    assert job["ended"] == job["total"] == attempts * task_count, job
    return {
        "rollouts": job["ended"],
        "seconds": elapsed,
        "per_sec": job["ended"] / elapsed,
        "pool_id": job["pool_id"],
    }


def run_sdk(url: str, key: str, pool: str, task: str, count: int, poll: str) -> dict[str, Any]:
    env = {**os.environ, "SYNTH_BACKEND_URL": url, "SYNTH_API_KEY": key}
    done = subprocess.run(
        [str(SDK_PYTHON), "-c", SDK_LOOP, str(count), pool, task, poll],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"SDK loop failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["statuses"]) == {"succeeded"}, result["statuses"]
    return {"rollouts": count, "seconds": result["elapsed"], "per_sec": count / result["elapsed"]}


def backend_capacity(url: str, key: str, pool: str, count: int) -> dict[str, Any]:
    """The backend on its own: ``count`` rollouts created in batches, then one list call
    every 20 ms until all ended (a client that costs next to nothing)."""
    from envpools_cli import client as ep

    conn = {"backend_base": url, "api_key": key}
    tasks = [str(t["task_id"]) for t in ep.list_pool_tasks(pool, **conn)]
    requests = [
        {"task_ref": {"dataset": "bench", "task_id": tasks[i % len(tasks)]},
         "agent": {"harness": "nop"}, "pool_id": pool, "task_app_id": "", "timeouts": {}}
        for i in range(count)
    ]  # fmt: skip
    started = time.perf_counter()
    ids = []
    for offset in range(0, count, 50):
        created = ep.create_rollouts_batch(requests=requests[offset : offset + 50], **conn)
        ids += [r["rollout_id"] for r in created["rollouts"]]
    pending = set(ids)
    while pending:
        time.sleep(0.02)
        for status in ("succeeded", "failed", "error"):
            page = ep.list_rollouts(pool_id=pool, status=status, limit=500, **conn)
            pending -= {r["rollout_id"] for r in page["rollouts"]}
    elapsed = time.perf_counter() - started
    return {"rollouts": count, "seconds": elapsed, "per_sec": count / elapsed}


def bench(
    rollouts: int = 200,
    sdk_rollouts: int = 30,
    concurrency: int = 8,
    tasks: int = 10,
    max_running: int | None = None,
    repeat: int = 3,
) -> dict[str, Any]:
    """``repeat`` rounds of jobs / SDK as shipped / SDK polling fast / backend alone, in turn."""
    if not SDK_PYTHON.exists():
        raise SystemExit(f"the official SDK is expected in {SDK_PYTHON.parent.parent}")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="envpools-bench-jobs-") as tmp:
        root = Path(tmp)
        settings = ServerSettings(data_dir=root / "backend")
        if max_running is not None:
            settings.max_running = max_running
        thread = BackendThread(settings).start()
        try:
            _, key = thread.create_key("pro", name="bench")
            suite = make_tasks(root / "tasks", tasks)
            for index in range(repeat):
                data = root / f"data-{index}"
                job = run_job(thread.url, key, suite, data, rollouts, tasks, concurrency)
                pool = job["pool_id"]
                sdk = run_sdk(thread.url, key, pool, "task-00", sdk_rollouts, "default")
                fast = run_sdk(thread.url, key, pool, "task-00", sdk_rollouts, "0.05")
                alone = backend_capacity(thread.url, key, pool, rollouts)
                rounds.append(
                    {
                        "jobs_run": job,
                        "sdk_loop_as_shipped": sdk,
                        "sdk_loop_poll_50ms": fast,
                        "backend_alone": alone,
                        "ratio_vs_sdk_as_shipped": job["per_sec"] / sdk["per_sec"],
                        "ratio_vs_sdk_poll_50ms": job["per_sec"] / fast["per_sec"],
                        "share_of_backend_capacity": job["per_sec"] / alone["per_sec"],
                    }
                )
        finally:
            thread.stop()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    return {
        "rounds": rounds,
        "median_ratio_vs_sdk_as_shipped": median("ratio_vs_sdk_as_shipped"),
        "median_ratio_vs_sdk_poll_50ms": median("ratio_vs_sdk_poll_50ms"),
        "median_share_of_backend_capacity": median("share_of_backend_capacity"),
        "median_jobs_per_sec": statistics.median(r["jobs_run"]["per_sec"] for r in rounds),
        "backend_max_running": settings.max_running,
        "cores": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--sdk-rollouts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--max-running", type=int, help="the backend's machine-wide cap (default: the cores)"
    )
    args = parser.parse_args()
    result = bench(
        args.rollouts,
        args.sdk_rollouts,
        args.concurrency,
        max_running=args.max_running,
        repeat=args.repeat,
    )
    print(json.dumps(result, indent=2))
    for r in result["rounds"]:
        print(
            f"jobs run {r['jobs_run']['per_sec']:.2f}/s | SDK as shipped "
            f"{r['sdk_loop_as_shipped']['per_sec']:.2f}/s ({r['ratio_vs_sdk_as_shipped']:.1f}x) | "
            f"SDK polling 50 ms {r['sdk_loop_poll_50ms']['per_sec']:.2f}/s "
            f"({r['ratio_vs_sdk_poll_50ms']:.1f}x) | backend alone "
            f"{r['backend_alone']['per_sec']:.2f}/s ({r['share_of_backend_capacity']:.0%})",
            file=sys.stderr,
        )
    print(
        f"median: {result['median_ratio_vs_sdk_as_shipped']:.1f}x the SDK loop as shipped, "
        f"{result['median_ratio_vs_sdk_poll_50ms']:.1f}x polling every 50 ms, "
        f"{result['median_share_of_backend_capacity']:.0%} of what the backend can run",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
