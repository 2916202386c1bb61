"""Eval jobs against a real local backend (port 0, real SQLite, real sandboxes)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.app import run
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.settings import ServerSettings

#: Sandbox minutes are priced so that cost is a real figure to check (it follows time).
PRICES = "sandbox_minute_usd = 0.6\n"

CHECK_ANSWER = textwrap.dedent(
    """\
    if [ "$(cat /app/answer.txt 2>/dev/null)" = "42" ]; then
      echo 1 > /logs/verifier/reward.txt
    else
      echo 0 > /logs/verifier/reward.txt
    fi"""
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class CLI:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str | None = None) -> Result:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = run(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    return CLI(capsys, monkeypatch)


@dataclass
class Backend:
    thread: BackendThread
    key: str

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def conn(self) -> dict[str, Any]:
        return {"backend_base": self.url, "api_key": self.key}

    def rollouts(self, pool_id: str) -> list[dict[str, Any]]:
        """Every rollout of a pool, straight from the backend."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = ep.list_rollouts(pool_id=pool_id, limit=100, cursor=cursor, **self.conn)
            found.extend(page["rollouts"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def env(self) -> dict[str, str]:
        """Environment for an ``envpools`` subprocess talking to this backend."""
        return {
            **os.environ,
            "ENVPOOLS_API_URL": self.url,
            "ENVPOOLS_API_KEY": self.key,
            "ENVPOOLS_KEYRING": "file",
        }


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    settings = ServerSettings(
        data_dir=tmp_path / "backend", heartbeat_sec=1.0, price_table=prices, max_running=4
    )
    thread = BackendThread(settings).start()
    _, key = thread.create_key("pro", name="jobs")
    monkeypatch.setenv("ENVPOOLS_API_URL", thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", key)
    yield Backend(thread, key)
    thread.stop()


def make_task(root: Path, name: str, *, solve: str, test: str) -> Path:
    task = root / name
    (task / "environment" / "repo").mkdir(parents=True)
    (task / "solution").mkdir()
    (task / "tests").mkdir()
    (task / "instruction.md").write_text(f"Write 42 to /app/answer.txt ({name}).\n")
    (task / "task.toml").write_text('version = "1.0"\n')
    (task / "environment" / "Dockerfile").write_text(
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY repo/ /app/\n"
    )
    (task / "environment" / "repo" / "README.md").write_text("nothing here yet\n")
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\n" + solve + "\n")
    (task / "tests" / "test.sh").write_text("#!/bin/bash\n" + test + "\n")
    return task


def make_suite(root: Path, *, delay: float = 0.0, coin: bool = False) -> Path:
    """Six Harbor tasks: three the oracle solves, one it cannot, one scored 0.5 for
    anyone, one whose verifier errors (exits without a reward). ``coin`` adds a task
    the oracle solves about half the time; ``delay`` makes every verifier that slow."""
    pause = f"sleep {delay}\n" if delay else ""
    make_task(root, "alpha", solve="echo 42 > /app/answer.txt", test=pause + CHECK_ANSWER)
    make_task(root, "bravo", solve="echo 42 > /app/answer.txt", test=pause + CHECK_ANSWER)
    make_task(
        root,
        "charlie",
        solve="echo 42 > /app/answer.txt",
        test=pause
        + 'if [ "$(cat /app/answer.txt)" = "42" ]; then r=1; else r=0; fi\n'
        + 'echo "{\\"reward\\": $r, \\"style\\": 0.25}" > /logs/verifier/reward.json',
    )
    make_task(
        root, "delta-unsolvable", solve="echo 41 > /app/answer.txt", test=pause + CHECK_ANSWER
    )
    make_task(root, "echo-half", solve="true", test=pause + "echo 0.5 > /logs/verifier/reward.txt")
    make_task(
        root,
        "foxtrot-broken-verifier",
        solve="echo 42 > /app/answer.txt",
        test=pause + 'echo "verifier crashed" >&2\nexit 3',
    )
    if coin:
        make_task(
            root,
            "golf-coin",
            solve="if [ $((RANDOM % 2)) -eq 0 ]; then echo 42 > /app/answer.txt; fi",
            test=pause + CHECK_ANSWER,
        )
    (root / "not-a-task").mkdir()
    (root / "not-a-task" / "notes.txt").write_text("skipped\n")
    return root


def job_dirs(data_home: Path) -> list[Path]:
    root = data_home / "envpools" / "jobs"
    return sorted(p for p in root.iterdir() if (p / "job.json").is_file()) if root.is_dir() else []


def records(job_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in (job_dir / "trials").glob("*.json"):
        with contextlib.suppress(ValueError):  # a write in progress
            out.append(json.loads(path.read_text()))
    return out


def envpools_process(
    *args: str, env: dict[str, str], stderr: Any = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "envpools_cli", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
