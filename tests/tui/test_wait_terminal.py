"""`rollouts wait` on a real terminal: the spinner turns, and a status is timed from the
rollout's own transition (a rollout queued 4 s before the wait began reads ``queued 4s``
at once, not ``queued 0s``)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from tests.cli.conftest import CLI
from tests.cli.test_cli_views import queue_one

from .harness import Terminal, require_tmux

SPINNER = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


@pytest.mark.parametrize("columns", [80, 120])
def test_the_spinner_turns_and_times_from_the_rollout(cli: CLI, paused: str, columns: int) -> None:
    require_tmux()
    rid = queue_one(cli, paused)
    time.sleep(4)  # queued for a while before anyone waits for it
    with (
        tempfile.TemporaryDirectory(prefix="tw-") as short,
        Terminal(Path(short), columns=columns) as term,
    ):
        term.start("rollouts", "wait", rid, "--timeout", "6")
        deadline = time.monotonic() + 30
        marks: set[str] = set()
        first_time = None
        while time.monotonic() < deadline and (len(marks) < 3 or first_time is None):
            for row in term.rows(history=False):
                words = row.split()
                if len(words) >= 4 and words[1] == rid and words[2] == "queued":
                    marks.add(words[0])
                    if first_time is None:
                        first_time = words[3]
            time.sleep(0.1)
        assert len(marks) >= 3 and marks <= SPINNER, f"the spinner stood still: {marks}"
        assert first_time is not None and int(first_time.rstrip("s")) >= 4, first_time
        assert term.wait() == 3
