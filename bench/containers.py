"""The container sandbox driver's cost: starting a sandbox, and a nop rollout end to end.

    .venv/bin/python bench/containers.py start --sandbox container|bwrap [-n 20]
    .venv/bin/python bench/containers.py nop --sandbox container|bwrap [-n 5]

- ``start``: the driver's own ``run`` of ``true`` (what each phase of a rollout pays to
  get into its sandbox: for containers, the engine client, conmon, runc, the cgroups),
  ``-n`` times in this process; prints the median in milliseconds.
- ``nop``: a backend on port 0 with that driver and a one-file task (its Dockerfile
  ``FROM`` the base image, so the image is built once, on the warm-up rollout), then
  ``-n`` oracle rollouts one after the other, each timed from ``create`` to a terminal
  status (image lookup, workspace copy, agent and verifier phases, events); prints the
  median in seconds.

For farm-bench, each side a whole process (interpreter, driver set-up with the engine
probe, and the runs), bwrap the anchor:

    farm-bench -n 5 --timeout 600 \
      --vs '.venv/bin/python bench/containers.py start --sandbox bwrap -n 10' \
      -- .venv/bin/python bench/containers.py start --sandbox container -n 10
    farm-bench -n 5 --timeout 900 \
      --vs '.venv/bin/python bench/containers.py nop --sandbox bwrap -n 5' \
      -- .venv/bin/python bench/containers.py nop --sandbox container -n 5

The container base image must exist (``scripts/base-image``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envpools_cli import client as ep  # noqa: E402
from envpools_cli.server.sandbox.container import DEFAULT_IMAGE, make_any_driver  # noqa: E402
from envpools_cli.server.sandbox.drivers import SandboxDriver, SandboxSpec  # noqa: E402
from envpools_cli.server.serve import BackendThread  # noqa: E402
from envpools_cli.server.settings import ServerSettings  # noqa: E402


def _driver(sandbox: str) -> SandboxDriver:
    driver = make_any_driver(sandbox, owner="bench").driver
    if driver.name != sandbox:
        raise SystemExit(f"the {sandbox} driver does not work here (got {driver.name})")
    return driver


def _true_spec(workspace: Path) -> SandboxSpec:
    return SandboxSpec(command=["true"], workspace=workspace, image=DEFAULT_IMAGE)


def start(sandbox: str, runs: int) -> dict[str, float]:
    driver = _driver(sandbox)
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(runs + 1):
            began = time.perf_counter()
            result = driver.run(
                _true_spec(Path(scratch)), timeout=60, cancel=threading.Event(), on_line=print
            )
            times.append(time.perf_counter() - began)
            if result.exit_code != 0:
                raise SystemExit(f"true exited {result.exit_code} in the {sandbox} sandbox")
    kept = times[1:]  # the first run warms the engine's caches
    return {"median_ms": statistics.median(kept) * 1000, "min_ms": min(kept) * 1000}


def _task(root: Path) -> Path:
    task = root / "nop-task"
    for folder in ("environment", "solution", "tests"):
        (task / folder).mkdir(parents=True)
    (task / "instruction.md").write_text("Nothing to do.\n")
    (task / "task.toml").write_text('version = "1.0"\n')
    (task / "environment" / "Dockerfile").write_text(f"FROM {DEFAULT_IMAGE}\nWORKDIR /app\n")
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\ntrue\n")
    (task / "tests" / "test.sh").write_text("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n")
    return task


def nop(sandbox: str, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        settings = ServerSettings(data_dir=root / "data", sandbox=sandbox)
        thread = BackendThread(settings).start()
        try:
            _, key = thread.create_key("pro", name="bench")
            conn = {"backend_base": thread.url, "api_key": key}
            task = _task(root)
            pool = {"pool_id": "bench", "pool_type": "sandbox"}
            pool["tasks"] = [ep.PoolTask.from_local("nop", str(task)).model_dump()]
            ep.create_pool(request=pool, **conn)
            request = {
                "task_ref": {"dataset": "bench", "task_id": "nop"},
                "agent": {"harness": "oracle"},
                "pool_id": "bench",
                "task_app_id": "",
                "timeouts": {},
            }
            times = []
            for _ in range(runs + 1):
                began = time.perf_counter()
                rollout_id = ep.create_rollout(request=dict(request), **conn)["rollout_id"]
                done = ep.RolloutHandle(rollout_id, **conn).wait(timeout=300, poll_interval=0.02)
                times.append(time.perf_counter() - began)
                if done["status"] != "succeeded":
                    raise SystemExit(f"the nop rollout ended {done['status']}: {done.get('error')}")
        finally:
            thread.stop()
    kept = times[1:]  # the first builds (or finds) the image
    return {"median_sec": statistics.median(kept), "min_sec": min(kept)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["start", "nop"])
    parser.add_argument("--sandbox", choices=["container", "bwrap"], default="container")
    parser.add_argument("-n", type=int, default=None, help="timed runs (after one warm-up)")
    args = parser.parse_args()
    if args.what == "start":
        figures = start(args.sandbox, args.n or 20)
    else:
        figures = nop(args.sandbox, args.n or 5)
    print(json.dumps({"sandbox": args.sandbox, args.what: figures}))


if __name__ == "__main__":
    main()
