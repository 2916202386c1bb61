"""`jobs show` on a real terminal (a pty of a given size): it fits, and nothing is cut."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.jobs.conftest import CLI, Backend, make_suite

pytestmark = pytest.mark.sandbox

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def run_in_terminal(args: list[str], env: dict[str, str], columns: int) -> str:
    """Run envpools with stdout and stderr on a pty ``columns`` wide; return what it drew."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "envpools_cli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "", "LINES": ""},
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    assert process.returncode == 0
    return _ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.fixture
def finished_job(cli: CLI, backend: Backend, tmp_path: Path) -> str:
    suite = make_suite(tmp_path / "suite")
    ran = cli("jobs", "run", "--tasks", str(suite), "-a", "oracle", "-a", "nop", "-k", "3", "-q")
    assert ran.code == 0, ran.err
    return ran.out.strip()


def test_show_fits_80_columns(finished_job: str, backend: Backend) -> None:
    screen = run_in_terminal(["jobs", "show", finished_job], backend.env(), 80)
    lines = screen.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, screen
    assert "…" not in screen
    rows = [line.split() for line in lines]
    header = next(r for r in rows if r[:2] == ["TASK", "AGENT"])
    # PASS@1 equals PASS (passes/attempts): 80 columns leave it out. ERR stays: errors
    # (here a verifier without a reward) are counted apart from failures everywhere.
    assert header == [
        "TASK", "AGENT", "PASS", "ERR", "PASS@3", "95%", "CI", "REWARD", "TIME", "COST"
    ]  # fmt: skip
    table = {(r[0], r[1]): r for r in rows if len(r) == 9 and r[1] in ("oracle", "nop")}
    # Every task id whole on its line, and the figures of known rows.
    assert len(table) == 12, screen
    assert table[("alpha", "oracle")][2:6] == ["3/3", "-", "1.00", "0.44-1.00"]
    assert table[("delta-unsolvable", "oracle")][2:7] == ["0/3", "-", "0.00", "0.00-0.56", "0.00"]
    assert table[("echo-half", "nop")][2:7] == ["0/3", "-", "0.00", "0.00-0.56", "0.50"]
    assert table[("foxtrot-broken-verifier", "nop")][2:4] == ["0/0+", "3"]
    assert all(r[8].startswith("$") for r in table.values())
    totals = {r[0]: r for r in rows if r and r[0] in ("oracle", "nop") and len(r) == 8}
    assert totals["oracle"][1:5] == ["9/15+", "3", "0.60", "0.36-0.80"]
    assert totals["nop"][1:5] == ["0/15+", "3", "0.00", "0.00-0.20"]
    assert "6 rollout(s) reached no verdict (verifier 6): not counted as attempts" in screen


def test_show_adds_columns_on_a_wide_terminal(finished_job: str, backend: Backend) -> None:
    screen = run_in_terminal(["jobs", "show", finished_job], backend.env(), 140)
    header = next(line for line in screen.splitlines() if line.split()[:1] == ["TASK"])
    assert header.split()[4] == "PASS@1"
    assert header.split()[-4:] == ["COST", "TOKENS", "CACHE", "$/PASS"]
    totals = next(line for line in screen.splitlines() if line.split()[:1] == ["AGENT"])
    assert totals.split()[-4:] == ["$/PASS", "ERRORS", "MODEL", "USED"]
    assert max(len(line.rstrip()) for line in screen.splitlines()) <= 140
