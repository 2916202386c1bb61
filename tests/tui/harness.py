"""A real terminal for tests: envpools run inside tmux at a chosen size, the screen captured.

Each ``Terminal`` is its own tmux server (a private socket under the test's tmp dir), so
tests never see each other's sessions or the user's. The command runs as the pane's
process with ``remain-on-exit``, so its last screen and exit status can be read after it
ends; ``screen()`` can also be read while it runs (live views).

``rows()`` is what the terminal shows, one entry per screen row; ``lines()`` is the same
capture with rows the terminal wrapped joined back (``capture-pane -J``). When the two
agree, nothing was wrapped by the terminal: every line the program wrote fitted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

__all__ = ["Terminal", "require_tmux"]

_CONFIG = """\
set -g remain-on-exit on
set -g status off
set -g history-limit 20000
set -g default-terminal xterm-256color
"""


def require_tmux() -> str:
    """The tmux binary (.ci/run installs it); a clear skip reason without it."""
    found = shutil.which("tmux")
    if found is None:
        pytest.skip("tmux is not installed (.ci/run installs it: apt-get install tmux)")
    return found


class Terminal:
    """One tmux pane of ``columns`` x ``rows`` running one command."""

    def __init__(self, workdir: Path, *, columns: int, rows: int = 50) -> None:
        self.tmux = require_tmux()
        self.columns, self.height = columns, rows
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = workdir / f"tmux-{columns}x{rows}-{time.monotonic_ns()}.sock"
        self.config = workdir / "tmux.conf"
        self.config.write_text(_CONFIG)
        self.session = "t"
        self.status_file = workdir / f"status-{time.monotonic_ns()}"
        self.started = False

    def _tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [self.tmux, "-S", str(self.socket), "-f", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, *argv: str) -> Terminal:
        """Start ``envpools ARGV...`` (this Python's) in the pane; returns at once."""
        # The exit status goes to a file: tmux's own #{pane_dead_status} is sometimes
        # left empty for a pane that has died.
        self.status_file.unlink(missing_ok=True)
        command = (
            shlex.join([sys.executable, "-m", "envpools_cli", *argv])
            + f"; echo $? > {shlex.quote(str(self.status_file))}"
        )
        # The server is started by this call, so the pane inherits this process's
        # environment (the test backend's URL and key among it).
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("TMUX", None)
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        subprocess.run(
            [
                self.tmux,
                "-S",
                str(self.socket),
                "-f",
                str(self.config),
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                str(self.columns),
                "-y",
                str(self.height),
                command,
            ],
            env=env,
            check=True,
            timeout=30,
        )
        self.started = True
        return self

    def _pane(self, fmt: str) -> str:
        return self._tmux("display-message", "-p", "-t", self.session, fmt).strip()

    def size(self) -> tuple[int, int]:
        width, height = self._pane("#{pane_width} #{pane_height}").split()
        return int(width), int(height)

    def running(self) -> bool:
        return not self.status_file.exists() or not self.status_file.read_text().strip()

    def wait(self, timeout: float = 90.0) -> int:
        """Wait for the command to end; its exit status."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout}s:\n" + "\n".join(self.rows()))
            time.sleep(0.1)
        return int(self.status_file.read_text())

    def wait_for(self, text: str, timeout: float = 30.0) -> list[str]:
        """The screen once ``text`` shows on it."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(history=False)
            if any(text in row for row in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed:\n" + "\n".join(rows))
            time.sleep(0.05)

    def _capture(self, *, joined: bool, history: bool) -> list[str]:
        args = ["capture-pane", "-p", "-t", self.session]
        if history:
            args += ["-S", "-", "-E", "-"]
        if joined:
            args.append("-J")
        rows = self._tmux(*args).splitlines()
        rows = [row.rstrip() for row in rows if not row.startswith("Pane is dead")]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def rows(self, *, history: bool = True) -> list[str]:
        """Screen rows as the terminal shows them (with the scrollback)."""
        return self._capture(joined=False, history=history)

    def lines(self, *, history: bool = True) -> list[str]:
        """The same, with rows the terminal wrapped joined back into one line."""
        return self._capture(joined=True, history=history)

    def close(self) -> None:
        if self.started:
            self._tmux("kill-server", check=False)
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
