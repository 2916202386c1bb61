"""The backend's open-files limit: raised at start, fitted under, and said when too low.

Before: the soft limit was never raised (~4 files per running rollout: at 300 running under
1024, 44 rollouts ended in error), and with a hard limit of 1024 the backend did not start
at all, saying "bubblewrap is not installed or cannot create namespaces ... this is a bug"
(the sandbox's own open-files limit, 4096, was above the hard limit).

Each backend here is ``envpools local serve`` in a process started with the limits under
test (as a shell with ``ulimit -n 1024`` would start it).
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
import time
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.sandbox.limits import FILES_PER_ROLLOUT, FILES_RESERVED
from tests.integration.conftest import local_task, make_task

from .conftest import ENVPOOLS, ServeProcess, rollout_request

ROLLOUTS = 300
_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def _serve(tmp_path: Path, name: str, open_files: tuple[int, int], **env: str) -> ServeProcess:
    server = ServeProcess(
        data_dir=tmp_path / name,
        state_dir=tmp_path / f"{name}-state",
        log=tmp_path / f"{name}.log",
        open_files=open_files,
        extra_env=env,
    )
    server.state_dir.mkdir()
    server.create_key()
    return server


def _open_files(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line in /proc/PID/limits")


@pytest.mark.skipif(
    os.geteuid() != 0 and _HARD <= 1024,
    reason="needs a hard open-files limit above 1024 (or root, to set one)",
)
@pytest.mark.timeout(300)
def test_300_running_rollouts_under_a_1024_soft_limit_all_succeed(tmp_path: Path) -> None:
    hard = max(_HARD, 8192) if os.geteuid() == 0 else _HARD
    # Admission would run 16 of these at once on 2 cores (and 37 by memory): the tasks say
    # they need little, and the overcommit lets all 300 in.
    server = _serve(
        tmp_path,
        "many",
        (1024, hard),
        ENVPOOLS_MAX_RUNNING=str(ROLLOUTS + 20),
        ENVPOOLS_CPU_OVERCOMMIT="100",
    )
    server.start(timeout=60)
    try:
        assert server.process is not None
        pid = server.process.pid
        assert _soft_limit(pid) == hard, "the backend raised its soft limit to the hard one"
        conn = server.conn
        # Everything overlaps: each rollout holds its sandbox for a few seconds.
        task = make_task(
            tmp_path,
            "wait",
            solve="sleep 20\n",
            toml="[environment]\ncpus = 0.1\nmemory_mb = 48\n",
        )
        body = {
            "pool_id": "p",
            "pool_type": "sandbox",
            "concurrency": ROLLOUTS,
            "tasks": [local_task("wait", task).model_dump()],
        }
        ep.create_pool(request=body, **conn)
        peak = {"files": 0, "running": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                peak["files"] = max(peak["files"], _open_files(pid))
                with contextlib.suppress(ep.EnvPoolsError):
                    running = ep.get_queue_status(**conn)["total_running"]
                    peak["running"] = max(peak["running"], running)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        created = ep.create_rollouts_batch(
            requests=[rollout_request("p", "wait") for _ in range(ROLLOUTS)], **conn
        )
        assert not created["errors"], created["errors"][:3]
        ids = [r["rollout_id"] for r in created["rollouts"]]
        deadline = time.monotonic() + 240
        statuses: dict[str, str] = {}
        while True:
            page = ep.list_rollouts(limit=500, **conn)["rollouts"]
            statuses = {r["rollout_id"]: r["status"] for r in page}
            if all(statuses.get(i) in ep.TERMINAL_STATUSES for i in ids):
                break
            assert time.monotonic() < deadline, {
                s: list(statuses.values()).count(s) for s in set(statuses.values())
            }
            time.sleep(1)
        done.set()
        sampler.join()
        failed = {i: s for i, s in statuses.items() if s != "succeeded"}
        errors = [ep.get_rollout(i, **conn).get("error") for i in list(failed)[:3]]
        assert not failed, f"{len(failed)} of {ROLLOUTS} did not succeed: {errors}"
        assert peak["running"] >= ROLLOUTS * 0.8, peak
        # More than the old soft limit was open at once: the raise is what made it work.
        assert peak["files"] > 1024, peak
    finally:
        server.stop()


def test_a_hard_limit_of_1024_starts_and_says_what_it_needs(tmp_path: Path) -> None:
    wanted = 300
    server = _serve(tmp_path, "low", (1024, 1024), ENVPOOLS_MAX_RUNNING=str(wanted))
    server.start(timeout=60)
    try:
        log = server.log.read_text()
        needed = FILES_RESERVED + FILES_PER_ROLLOUT * wanted
        fits = (1024 - FILES_RESERVED) // FILES_PER_ROLLOUT
        assert "open-files hard limit is 1024" in log, log
        assert f"needs {needed}" in log and f"ulimit -Hn {needed}" in log, log
        assert f"at most {fits} at once" in log, log
        assert "bubblewrap" not in log and "Traceback" not in log, log
        status = ep.get_queue_status(**server.conn)
        assert status["max_running"] == fits
        # The sandbox's own limit fits under the hard one: a rollout runs.
        task = make_task(tmp_path, "ok")
        pool = {
            "pool_id": "p",
            "pool_type": "sandbox",
            "tasks": [local_task("ok", task).model_dump()],
        }
        ep.create_pool(request=pool, **server.conn)
        rollout = ep.create_rollout(request=rollout_request("p", "ok"), **server.conn)
        handle = ep.RolloutHandle(rollout["rollout_id"], **server.conn)
        assert handle.wait(timeout=60)["status"] == "succeeded"
    finally:
        server.stop()


def test_a_hard_limit_too_low_for_one_rollout_is_said_with_the_number_needed(
    tmp_path: Path,
) -> None:
    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVPOOLS_", "SYNTH_"))}
    env.update(
        ENVPOOLS_SANDBOX=os.environ["ENVPOOLS_SANDBOX"],
        ENVPOOLS_STATE_DIR=str(tmp_path / "state"),
        ENVPOOLS_MAX_RUNNING="4",
    )
    result = subprocess.run(
        [*ENVPOOLS, "local", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=low,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "open-files hard limit is 200, too low" in lines[0]
    assert f"at least {FILES_RESERVED + FILES_PER_ROLLOUT}" in lines[0]
    assert f"ulimit -Hn {FILES_RESERVED + FILES_PER_ROLLOUT * 4}" in lines[0]
    assert "Traceback" not in result.stderr and "bug" not in result.stderr
    assert not (tmp_path / "state" / "local-backend.json").exists(), "it never listened"
