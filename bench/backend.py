"""A local backend in a process of its own, and the fixtures the benchmarks need from it.

The backend runs as a separate process (as ``envpools local up`` runs it) so that its
memory can be read on its own and so that the measuring side never shares its GIL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from envpools_cli.models import RolloutStatus

ROOT = Path(__file__).resolve().parents[1]

_SERVE = """
import sys
from pathlib import Path
from envpools_cli.server.serve import serve
from envpools_cli.server.settings import ServerSettings
settings = ServerSettings.from_env(Path(sys.argv[1]))
settings.heartbeat_sec = 5.0
serve(settings, port=0, state_file=Path(sys.argv[2]), log_level="warning")
"""


def make_task(root: Path, name: str, solve: str = "true") -> Path:
    """A Harbor-format task whose solution runs ``solve`` and whose verifier passes."""
    task = root / name
    for sub in ("environment", "solution", "tests"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "instruction.md").write_text("Benchmark task.\n")
    (task / "task.toml").write_text('version = "1.0"\n')
    (task / "environment" / "Dockerfile").write_text("FROM scratch\nWORKDIR /app\n")
    (task / "solution" / "solve.sh").write_text(f"#!/bin/bash\n{solve}\n")
    (task / "tests" / "test.sh").write_text("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n")
    return task


class Backend:
    """``envpools`` local backend on port 0 in a child process, with one org and key."""

    def __init__(self, root: Path | None = None, **env: str) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="envpools-bench-"))
        self.data_dir = self.root / "data"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.key = ""

    def start(self) -> Backend:
        from envpools_cli.server.state.store import Store

        store = Store(self.data_dir / "envpools.db")
        org = store.create_org("bench", "pro")
        self.key = store.create_key(org.org_id)
        store.close()
        state = self.root / "state.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.data_dir), str(state)],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not state.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark backend did not start")
            time.sleep(0.02)
        self.url = json.loads(state.read_text())["url"]
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "client"):
            self.client.close()

    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def env_vars(self) -> dict[str, str]:
        """What a CLI or SDK process needs to talk to this backend."""
        return {
            "ENVPOOLS_API_URL": self.url,
            "ENVPOOLS_API_KEY": self.key,
            "SYNTH_BACKEND_URL": self.url,
            "SYNTH_API_KEY": self.key,
            "ENVPOOLS_CONFIG_DIR": str(self.root / "config"),
            "ENVPOOLS_KEYRING": "file",
        }

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def db_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.glob("envpools.db*") if p.is_file())

    # --- fixtures -----------------------------------------------------------------------

    def pool(self, pool_id: str, tasks: dict[str, Path], concurrency: int = 2) -> None:
        body = {
            "pool_id": pool_id,
            "pool_type": "sandbox",
            "concurrency": concurrency,
            "max_queue": 100000,
            "tasks": [
                {
                    "task_id": name,
                    "backend": "harbor",
                    "data_source": {"type": "local", "path": str(path)},
                }
                for name, path in tasks.items()
            ],
        }
        self.client.post("/v1/pools", json=body).raise_for_status()

    def create(self, pool_id: str, task_id: str, harness: str = "nop") -> str:
        request = {
            "task_ref": {"dataset": "bench", "task_id": task_id},
            "agent": {"harness": harness},
            "pool_id": pool_id,
            "task_app_id": "",
            "timeouts": {"agent_sec": 120},
        }
        answer = self.client.post("/v1/rollouts", json=request)
        answer.raise_for_status()
        return str(answer.json()["rollout_id"])

    def wait_terminal(self, rollout_id: str, timeout: float = 120) -> str:
        """Follow the rollout's own event stream until it ends: its final status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.client.get(f"/v1/rollouts/{rollout_id}").json()["status"]
            if RolloutStatus.terminal(status):
                return str(status)
            time.sleep(0.01)
        raise TimeoutError(rollout_id)

    def seed_events(self, rollout_id: str, count: int) -> None:
        """Put ``count`` agent events before a finished rollout's final event.

        The rollout ran for real; the agent lines are added in one transaction (an agent
        printing 100k lines takes the live path far longer than a replay benchmark needs).
        """
        from envpools_cli.server.state.frames import data_text, frame_envelope, frame_text
        from envpools_cli.server.state.store import Store

        store = Store(self.data_dir / "envpools.db")
        try:
            with store.tx() as db:
                rows = [
                    frame_envelope(row["frame"])
                    for row in db.execute(
                        "SELECT frame FROM events WHERE rollout_id = ? ORDER BY seq",
                        (rollout_id,),
                    )
                ]
                head, tail = rows[:-1], rows[-1]
                stamp = head[-1]["timestamp"]
                db.execute("DELETE FROM events WHERE rollout_id = ?", (rollout_id,))
                new = [(e["event"], e["timestamp"], data_text(e["data"])) for e in head]
                new += [
                    (
                        "agent",
                        stamp,
                        data_text(
                            {"stream": "stdout", "line": i, "text": f"output line {i} " + "x" * 60}
                        ),
                    )
                    for i in range(1, count + 1)
                ]
                new.append((tail["event"], tail["timestamp"], data_text(tail["data"])))
                db.executemany(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            rollout_id,
                            seq,
                            event,
                            stamp,
                            int(seq == len(new)),
                            frame_text(seq, event, stamp, text).encode(),
                        )
                        for seq, (event, stamp, text) in enumerate(new, start=1)
                    ],
                )
        finally:
            store.close()

    def finished_rollout(self, events: int, tasks_root: Path) -> str:
        """A succeeded ``oracle`` rollout whose history holds ``events`` agent lines more."""
        self.pool("replay", {"replay": make_task(tasks_root, "replay")})
        rollout_id = self.create("replay", "replay", harness="oracle")
        status = self.wait_terminal(rollout_id)
        if status != "succeeded":
            raise RuntimeError(f"the replay rollout ended {status}")
        self.seed_events(rollout_id, events)
        return rollout_id
