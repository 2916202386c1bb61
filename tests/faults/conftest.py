"""Fixtures for fault tests: a real backend (in a thread, or ``envpools local serve`` in a
process that can be SIGKILLed), the fault proxy in front of it, and tasks that talk a lot."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.server.state.store import Store
from tests.integration.conftest import Backend, fast_session, make_task
from tests.integration.conftest import backend as backend  # the fixture, shared

from .proxy import FaultProxy

ENVPOOLS = [sys.executable, "-m", "envpools_cli"]


@pytest.fixture
def proxy(backend: Backend) -> Iterator[FaultProxy]:
    with FaultProxy(backend.url) as running:
        yield running


def chatty_task(root: Path, name: str, lines: int, *, sleep: float = 0.0) -> Path:
    """A task whose solution prints ``lines`` numbered lines (one agent event each)."""
    pause = f"sleep {sleep}\n" if sleep else ""
    solve = f"""
    for i in $(seq 1 {lines}); do echo "line $i of {lines}"; done
    {pause}"""
    return make_task(root, name, solve=textwrap.dedent(solve))


def rollout_request(pool_id: str, task_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "task_ref": {"dataset": "faults", "task_id": task_id},
        "agent": {"harness": "oracle"},
        "pool_id": pool_id,
        "task_app_id": "",
        "timeouts": {},
        **extra,
    }


def stored_events(conn: dict[str, Any], rollout_id: str) -> list[dict[str, Any]]:
    """Every stored event of a finished rollout, read straight from the backend."""
    return list(ep.stream_rollout_events(rollout_id, **conn))


def assert_exact_sequence(got: list[dict[str, Any]], stored: list[dict[str, Any]]) -> None:
    """0 lost, 0 duplicated, 0 reordered: the same envelopes in the same order."""
    seqs = [e["seq"] for e in got]
    assert len(seqs) == len(set(seqs)), "duplicated events"
    assert seqs == sorted(seqs), "events out of order"
    assert seqs == list(range(1, len(stored) + 1)), f"lost events: got {len(seqs)} of {len(stored)}"
    assert [(e["seq"], e["event"], e["data"]) for e in got] == [
        (e["seq"], e["event"], e["data"]) for e in stored
    ]


# --- a backend in its own process -----------------------------------------------------------


@dataclass
class ServeProcess:
    """``envpools local serve`` on a real data dir; SIGKILL it and start it again."""

    data_dir: Path
    state_dir: Path
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    key: str = ""
    org_id: str = ""
    open_files: tuple[int, int] | None = None
    """RLIMIT_NOFILE (soft, hard) the backend starts with; None: this process's."""
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVPOOLS_", "SYNTH_"))}
        env["ENVPOOLS_STATE_DIR"] = str(self.state_dir)
        env["ENVPOOLS_HEARTBEAT_SEC"] = "1"
        # The driver the session chose (tests/conftest.py): `auto` would pick a container
        # engine where one works, and these tasks are not about the driver.
        env["ENVPOOLS_SANDBOX"] = os.environ["ENVPOOLS_SANDBOX"]
        return {**env, **self.extra_env}

    def _limits(self) -> None:
        """In the child, before exec: the open-files limits it is to start with."""
        if self.open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def create_key(self) -> str:
        store = Store(self.data_dir / "envpools.db")
        try:
            org = store.create_org("faults", "pro")
            self.org_id, self.key = org.org_id, store.create_key(org.org_id)
        finally:
            store.close()
        return self.key

    def start(self, timeout: float = 30.0) -> ServeProcess:
        state = self.state_dir / "local-backend.json"
        state.unlink(missing_ok=True)
        command = [
            *ENVPOOLS,
            "local",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env(),
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=self._limits if self.open_files is not None else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"envpools local serve exited: {self.log.read_text()[-2000:]}")
            try:
                found = json.loads(state.read_text())
            except (FileNotFoundError, ValueError):
                found = {}
            if found.get("pid") == self.process.pid and _healthy(found["url"]):
                self.url, self.port = found["url"], int(found["port"])
                return self
            time.sleep(0.05)
        raise AssertionError(f"envpools local serve did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, the database is left as the kernel found it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    @property
    def conn(self) -> dict[str, Any]:
        return {"backend_base": self.url, "api_key": self.key, "session": fast_session()}


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _leftovers(marker: str) -> list[int]:
    """Processes whose command line or folder is under ``marker`` (sandboxes a SIGKILL
    orphaned)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if marker.encode() in cmdline or cwd.startswith(marker):
            found.append(int(entry.name))
    return found


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(
        data_dir=tmp_path / "backend", state_dir=tmp_path / "state", log=tmp_path / "serve.log"
    )
    server.state_dir.mkdir()
    server.create_key()
    yield server
    server.stop()
    for pid in _leftovers(str(server.data_dir)):  # only what this test's backends started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
