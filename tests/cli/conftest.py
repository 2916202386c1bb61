"""Run the CLI in-process against a real local backend on port 0."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli.app import run
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.services.placement import examples_dir
from envpools_cli.server.settings import ServerSettings

EXAMPLE = examples_dir() / "fix-failing-test"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[str]:
        return [line for line in self.out.splitlines() if line]


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
class Local:
    thread: BackendThread
    key: str
    url: str


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    thread = BackendThread(ServerSettings(data_dir=tmp_path / "backend", heartbeat_sec=1.0))
    thread.start()
    _, key = thread.create_key("pro", name="cli")
    monkeypatch.setenv("ENVPOOLS_API_URL", thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", key)
    yield Local(thread, key, thread.url)
    thread.stop()


def envpools_subprocess(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed entry point as a separate process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "envpools_cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=timeout,
        check=False,
    )
