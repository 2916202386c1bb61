"""Scale (issue 20): dispatch cost against queue length, hundreds running at once, a long
queue drained, live events with hundreds of chatty rollouts, and Ray with one worker node
against two.

Each part runs its own backend process (``bench.backend.Backend``), with the knobs it
needs in its environment (``ENVPOOLS_CPU_OVERCOMMIT`` for 200 at once on a small machine).

    .venv/bin/python -m bench.scale [--only dispatch,running,drain,live,ray] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.backend import Backend, make_task
from bench.live import TAILER, percentile

BATCH = 1000


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _request(pool_id: str, task_id: str, harness: str, priority: int = 0) -> dict[str, Any]:
    return {
        "task_ref": {"dataset": "bench", "task_id": task_id},
        "agent": {"harness": harness},
        "pool_id": pool_id,
        "task_app_id": "",
        "timeouts": {"agent_sec": 600},
        "priority": priority,
    }


def create_many(backend: Backend, request: dict[str, Any], count: int) -> list[str]:
    """``count`` rollouts through the batch endpoint (1000 a request)."""
    ids: list[str] = []
    while len(ids) < count:
        size = min(BATCH, count - len(ids))
        answer = backend.client.post("/v1/rollouts/batch", json={"requests": [request] * size})
        answer.raise_for_status()
        body = answer.json()
        if body["errors"]:
            raise RuntimeError(body["errors"][:3])
        ids += [r["rollout_id"] for r in body["rollouts"]]
    return ids


def _statuses(backend: Backend, pool_id: str) -> dict[str, int]:
    answer = backend.client.get(f"/v1/pools/{pool_id}/metrics")
    answer.raise_for_status()
    metrics = answer.json()
    return {"queued": metrics["queue_depth"], "running": metrics["running"]}


def _wait_pool(backend: Backend, pool_id: str, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = backend.client.get(f"/v1/pools/{pool_id}/metrics").json()
        done = sum(metrics[k] for k in ("succeeded", "failed", "cancelled", "error"))
        if done >= total:
            return
        time.sleep(0.2)
    raise TimeoutError(f"pool {pool_id} did not finish {total} rollouts")


def _scheduling(backend: Backend) -> dict[str, Any]:
    answer = backend.client.get("/v1/queue/status")
    answer.raise_for_status()
    return dict(answer.json()["scheduling"])


# --- dispatch cost against queue length --------------------------------------------------


def bench_dispatch(root: Path, *, queued: int, launches: int = 200) -> dict[str, Any]:
    """CPU time the scheduler spends per rollout it starts, with ``queued`` rollouts
    parked in the queue (a pool of concurrency 0) while ``launches`` ``nop`` rollouts of
    another pool start and run, 8 at a time."""
    with Backend(root / f"dispatch-{queued}", ENVPOOLS_CPU_OVERCOMMIT="50") as backend:
        tasks = root / f"dispatch-tasks-{queued}"
        backend.pool("parked", {"nap": make_task(tasks, "nap")}, concurrency=0)
        backend.pool("work", {"nop": make_task(tasks, "nop")}, concurrency=8)
        create_many(backend, _request("parked", "nap", "nop"), queued)
        before = _scheduling(backend)["dispatch"]
        started = time.monotonic()
        ids = create_many(backend, _request("work", "nop", "nop"), launches)
        _wait_pool(backend, "work", launches, timeout=600)
        wall = time.monotonic() - started
        after = _scheduling(backend)
        dispatch = after["dispatch"]
        launched = dispatch["launched"] - before["launched"]
        cpu_ms = dispatch["cpu_ms"] - before["cpu_ms"]
        assert launched == launches, (launched, launches)
        assert after["queued"] == queued, after["queued"]
        gaps = _create_to_start(backend, ids[:50])
        return {
            "queued": queued,
            "launches": launches,
            "dispatch_cpu_ms_per_launch": cpu_ms / launched,
            "create_to_start_p50_ms": statistics.median(gaps) * 1000,
            "wall_sec": wall,
        }


def _create_to_start(backend: Backend, ids: list[str]) -> list[float]:
    gaps = []
    for rollout_id in ids:
        doc = backend.client.get(f"/v1/rollouts/{rollout_id}/events?limit=2").text
        stamps = [
            json.loads(line[6:])["timestamp"]
            for line in doc.splitlines()
            if line.startswith("data: ")
        ]
        gaps.append(_stamp(stamps[1]) - _stamp(stamps[0]))
    return gaps


# --- hundreds running at once -----------------------------------------------------------


def bench_running(root: Path, *, count: int = 200, sleep: float = 30.0) -> dict[str, Any]:
    """``count`` rollouts of a task that sleeps, all running at once: backend RSS per
    running rollout and create -> running latency."""
    overcommit = str(max(8, count))  # cores x overcommit >= count on any machine here
    with Backend(root / "running", ENVPOOLS_CPU_OVERCOMMIT=overcommit) as backend:
        tasks = root / "running-tasks"
        backend.pool("warm", {"nop": make_task(tasks, "nop")}, concurrency=8)
        for rollout_id in create_many(backend, _request("warm", "nop", "nop"), 16):
            backend.wait_terminal(rollout_id)
        idle = backend.rss_kib()
        nap = make_task(tasks, "nap", f"sleep {sleep}")
        # A sleeping task says it needs little memory (the default reservation is 512 MB:
        # 200 of those are more than most machines give).
        (nap / "task.toml").write_text('version = "1.0"\n[environment]\nmemory_mb = 64\n')
        backend.pool("naps", {"nap": nap}, concurrency=count)
        created = time.monotonic()
        ids = create_many(backend, _request("naps", "nap", "oracle"), count)
        most, peak_rss = 0, idle
        while time.monotonic() - created < sleep + 120:
            running = _statuses(backend, "naps")["running"]
            if running >= most:
                most = running
                peak_rss = max(peak_rss, backend.rss_kib())
            if most == count and running < count:
                break
            time.sleep(0.5)
        latencies = []
        for rollout_id in ids:
            events = backend.client.get(f"/v1/rollouts/{rollout_id}/events").text
            marks = {}
            for line in events.splitlines():
                if line.startswith("data: "):
                    envelope = json.loads(line[6:])
                    status = (envelope.get("data") or {}).get("status")
                    if envelope["event"] == "lifecycle" and status and status not in marks:
                        marks[status] = _stamp(envelope["timestamp"])
            if "running" in marks:
                latencies.append(marks["running"] - marks["queued"])
        return {
            "rollouts": count,
            "most_running": most,
            "rss_idle_kib": idle,
            "rss_running_kib": peak_rss,
            "rss_per_running_kib": (peak_rss - idle) / max(1, most),
            "create_to_running_p50_ms": statistics.median(latencies) * 1000,
            "create_to_running_p99_ms": percentile(latencies, 0.99) * 1000,
        }


# --- a long queue drained ----------------------------------------------------------------


def bench_drain(root: Path, *, count: int = 2000, concurrency: int = 16) -> dict[str, Any]:
    """``count`` ``nop`` rollouts queued at once, drained at pool concurrency ``concurrency``."""
    with Backend(root / "drain") as backend:
        backend.pool("drain", {"nop": make_task(root / "drain-tasks", "nop")}, concurrency)
        started = time.monotonic()
        create_many(backend, _request("drain", "nop", "nop"), count)
        queued_in = time.monotonic() - started
        _wait_pool(backend, "drain", count, timeout=3600)
        wall = time.monotonic() - started
        metrics = backend.client.get("/v1/pools/drain/metrics").json()
        return {
            "rollouts": count,
            "succeeded": metrics["succeeded"],
            "create_sec": queued_in,
            "wall_sec": wall,
            "rollouts_per_sec": count / wall,
        }


# --- live events at scale ----------------------------------------------------------------

#: A chatty agent: a line every ``interval`` seconds with the time it was printed, without
#: a process per line (bash's own clock and ``read -t`` on a pipe that never speaks).
CHATTY = """exec 3<> <(:)
read -t {settle} -u 3
for ((i = 1; i <= {count}; i++)); do echo "tick $EPOCHREALTIME"; read -t {interval} -u 3; done"""


def bench_live_scale(
    root: Path,
    *,
    rollouts: int = 200,
    tailers: int = 10,
    count: int = 400,
    interval: float = 0.025,
    settle: float = 15.0,
) -> dict[str, Any]:
    """``rollouts`` rollouts each printing a line every ``interval`` s; ``tailers`` SSE
    clients (a process each) follow ``tailers`` of them from their creation."""
    overcommit = str(max(8, rollouts))
    with Backend(root / "live-scale", ENVPOOLS_CPU_OVERCOMMIT=overcommit) as backend:
        solve = CHATTY.format(count=count, interval=interval, settle=settle)
        task = make_task(root / "live-scale-tasks", "chatty", solve)
        backend.pool("chatty", {"chatty": task}, concurrency=rollouts)
        ids = create_many(backend, _request("chatty", "chatty", "oracle"), rollouts)
        netloc = backend.url.removeprefix("http://")
        followers = [
            subprocess.Popen(
                [sys.executable, "-c", TAILER, netloc, f"/v1/rollouts/{rid}/events", backend.key],
                stdout=subprocess.PIPE,
            )
            for rid in ids[:: max(1, rollouts // tailers)][:tailers]
        ]
        results = [json.loads(proc.communicate()[0]) for proc in followers]
        _wait_pool(backend, "chatty", rollouts, timeout=600)
        counts = [len(r["printed"]) for r in results]
        ready = max(r["connected"] for r in results)
        printed = [x for r in results for x in r["printed"]]
        publish = [x for r in results for x in r["publish"]]
        stats = backend.client.get("/v1/pools/chatty/metrics").json()
        return {
            "rollouts": rollouts,
            "tailers": tailers,
            "events_per_tailer": min(counts),
            "complete": all(c == count for c in counts),
            "tailers_connected_before_first_line": ready < min(r["first_print"] for r in results),
            "events_per_sec_offered": rollouts / interval,
            "succeeded": stats["succeeded"],
            "print_p50_ms": statistics.median(printed) * 1000,
            "print_p99_ms": percentile(printed, 0.99) * 1000,
            "print_max_ms": max(printed) * 1000,
            "publish_p99_ms": percentile(publish, 0.99) * 1000,
        }


# --- Ray: one worker node against two ----------------------------------------------------


def bench_ray(root: Path, *, rollouts: int = 24, nap: float = 5.0) -> dict[str, Any]:
    """Rollouts/s of ``rollouts`` oracle rollouts that sleep ``nap`` s on a Ray cluster
    with one worker node, then with a second one added (two sandbox slots each)."""
    from bench.ray_cluster import private_network, start_cluster

    home = root / "ray-home"
    home.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"rollouts": rollouts, "nap_sec": nap}
    with private_network():
        cluster = start_cluster(1, home)
        try:
            env = {"HOME": str(home), "ENVPOOLS_EXECUTOR": "ray"}
            with Backend(root / "ray", ENVPOOLS_RAY_ADDRESS=cluster.address, **env) as backend:
                task = make_task(root / "ray-tasks", "nap", f"sleep {nap}")
                backend.pool("ray", {"nap": task}, concurrency=rollouts)
                for workers in (1, 2):
                    if workers == 2:
                        cluster.start_worker("worker2", 26600)
                        _wait_slots(backend, 4)
                    else:
                        _wait_slots(backend, 2)
                    create_many(backend, _request("ray", "nap", "oracle"), 2)  # warm workers
                    _wait_pool(backend, "ray", 2 + _done(backend), timeout=600)
                    before = _done(backend)
                    started = time.monotonic()
                    create_many(backend, _request("ray", "nap", "oracle"), rollouts)
                    _wait_pool(backend, "ray", before + rollouts, timeout=1200)
                    figures[f"per_sec_{workers}_workers"] = rollouts / (time.monotonic() - started)
        finally:
            cluster.stop()
    figures["two_over_one"] = figures["per_sec_2_workers"] / figures["per_sec_1_workers"]
    return figures


def _done(backend: Backend) -> int:
    metrics = backend.client.get("/v1/pools/ray/metrics").json()
    return int(sum(metrics[k] for k in ("succeeded", "failed", "cancelled", "error")))


def _wait_slots(backend: Backend, slots: int) -> None:
    deadline = time.monotonic() + 120
    while _scheduling(backend)["capacity"].get("sandbox_slots") != slots:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster never offered {slots} sandbox slots")
        time.sleep(0.5)


PARTS = ("dispatch", "running", "drain", "live", "ray")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="envpools-scale-"))
    only = args.only.split(",")
    found: dict[str, Any] = {}
    for part in only:
        print(f"... {part}", file=sys.stderr, flush=True)
        if part == "dispatch":
            small = bench_dispatch(root, queued=10)
            large = bench_dispatch(root, queued=10_000)
            found["dispatch"] = {
                "at_10": small,
                "at_10000": large,
                "ratio": large["dispatch_cpu_ms_per_launch"] / small["dispatch_cpu_ms_per_launch"],
            }
        elif part == "running":
            found["running"] = bench_running(root)
        elif part == "drain":
            found["drain"] = bench_drain(root)
        elif part == "live":
            found["live"] = bench_live_scale(root)
        elif part == "ray":
            found["ray"] = bench_ray(root)
        print(json.dumps({part: found[part]}, indent=2), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
