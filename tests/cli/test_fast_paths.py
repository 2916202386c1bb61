"""Plain reads and ``tail -o jsonl`` answered without Typer, httpx or pydantic (issue 12):
the same output as the full CLI, none of its imports, and a hand-over when unsure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.fast.tail import _Copy
from tests.cli.conftest import CLI, Local, envpools_subprocess
from tests.helpers.timing import fastest_ratio
from tests.integration.conftest import local_task, make_task

HEAVY = ("typer", "httpx", "pydantic", "keyring", "rich", "envpools_cli.app", "click")


def _finished(backend: Local, tmp_path: Path, lines: int = 50) -> str:
    conn = {"backend_base": backend.url, "api_key": backend.key}
    task = make_task(tmp_path, "chatty", solve=f"seq 1 {lines}")
    body = {
        "pool_id": "fp",
        "pool_type": "sandbox",
        "tasks": [local_task("chatty", task).model_dump()],
    }
    ep.create_pool(request=body, **conn)
    request = {
        "task_ref": {"dataset": "d", "task_id": "chatty"},
        "agent": {"harness": "oracle"},
        "pool_id": "fp",
        "task_app_id": "",
        "timeouts": {},
    }
    rollout_id = str(ep.create_rollout(request=request, **conn)["rollout_id"])
    deadline = time.monotonic() + 60
    while ep.get_rollout(rollout_id, **conn)["status"] not in ep.TERMINAL_STATUSES:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return rollout_id


def _imported(*args: str) -> set[str]:
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "envpools_cli", *args],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    return {line.split("|")[-1].strip() for line in found.stderr.splitlines() if "|" in line}


def test_reads_match_the_full_cli_and_import_none_of_it(
    backend: Local, cli: CLI, tmp_path: Path
) -> None:
    rollout_id = _finished(backend, tmp_path)
    for args in (("rollouts", "get", rollout_id, "-o", "json"), ("rollouts", "list", "--json")):
        fast = envpools_subprocess(*args)
        assert fast.returncode == 0, fast.stderr
        assert fast.stdout == cli(*args).out  # the full CLI, in-process
        modules = _imported(*args)
        assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}, modules
    tail_args = ("rollouts", "tail", rollout_id, "-o", "jsonl")
    fast = envpools_subprocess(*tail_args)
    assert fast.returncode == 0, fast.stderr
    full = cli(*tail_args).out
    assert [json.loads(x) for x in fast.stdout.splitlines()] == [
        json.loads(x) for x in full.splitlines()
    ]
    assert sum(1 for x in fast.stdout.splitlines() if '"agent"' in x) >= 50
    assert not {m for m in _imported(*tail_args) if m.split(".")[0] in HEAVY}


def test_errors_and_other_forms_go_to_the_full_cli(backend: Local) -> None:
    missing = envpools_subprocess("rollouts", "get", "ro_missing", "-o", "json")
    assert missing.returncode == 6 and missing.stdout == ""
    assert json.loads(missing.stderr)["error"]["code"] == "not_found"
    tail = envpools_subprocess("rollouts", "tail", "ro_missing", "-o", "jsonl")
    assert tail.returncode == 6 and tail.stdout == ""
    assert "httpx" in _imported("rollouts", "get", "ro_missing", "-o", "json", "--fields", "x")


def test_a_key_in_the_file_fallback_does_not_import_the_keyring(
    backend: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envpools_cli import keystore

    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    keystore.set_key("default", backend.key)
    monkeypatch.delenv("ENVPOOLS_KEYRING")
    monkeypatch.delenv("ENVPOOLS_API_KEY")
    modules = _imported("rollouts", "list", "-o", "json")
    assert "keyring" not in modules
    listed = envpools_subprocess("rollouts", "list", "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_the_copy_drops_duplicates_skips_heartbeats_and_stops_at_odd_frames() -> None:
    def frame(seq: int, event: str = "agent", data: str = "{}") -> bytes:
        envelope = f'{{"id":"{seq}","event":"{event}","seq":{seq},"data":{data}}}'
        return f"id: {seq}\nevent: {event}\ndata: {envelope}\n\n".encode()

    copy = _Copy()
    heartbeat = b'event: heartbeat\ndata: {"event":"heartbeat"}\n\n'
    stream = b"retry: 1000\n\n" + frame(1) + heartbeat + frame(2) + frame(2) + frame(3)[:9]
    lines, used = copy.feed(stream)
    assert lines.splitlines() == [
        frame(1).split(b"data: ")[1][:-2],
        frame(2).split(b"data: ")[1][:-2],
    ]
    assert stream[used:] == frame(3)[:9] and not copy.odd and copy.last == 2
    done = frame(3, "lifecycle", '{"status":"succeeded"}')
    lines, used = copy.feed(done)
    assert copy.terminal and copy.last == 3 and used == len(done)
    # A frame whose envelope disagrees with its id is not copied: the full CLI takes over.
    lines, used = copy.feed(b'id: 4\nevent: agent\ndata: {"id":"5","event":"agent"}\n\n')
    assert lines == b"" and used == 0 and copy.odd


def test_fast_read_stays_well_under_the_full_cli(backend: Local, tmp_path: Path) -> None:
    """A ratio measured in one run: the fast path importing Typer again would show here."""
    rollout_id = _finished(backend, tmp_path, lines=1)
    args = ["rollouts", "get", rollout_id, "-o", "json"]
    full = [
        sys.executable,
        "-c",
        "import sys; from envpools_cli.app import run; sys.exit(run(sys.argv[1:]))",
        *args,
    ]
    fast = [sys.executable, "-m", "envpools_cli", *args]
    ratio, fast_seconds, full_seconds = fastest_ratio(fast, full, runs=5)
    # Measured ~0.3 here; 0.8 leaves room for a noisy 2-core CI.
    assert ratio < 0.8, f"fast {fast_seconds:.3f}s vs full {full_seconds:.3f}s"
