"""The views in a real terminal (tmux, 80 and 120 columns): ids whole, nothing wrapped mid-word.

Each test runs envpools as the process of a tmux pane against the real local backend and
reads the screen back. Two properties hold for every view:

- every rollout id on screen sits whole on one row (a copy-paste gets all of it);
- the terminal wrapped nothing (``rows() == lines()``: no row continues on the next),
  and where the CLI wrapped a long value itself, every word of it is whole.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, EXAMPLE, Local
from tests.cli.test_cli_views import queue_one
from tests.integration.conftest import make_task

from .harness import Terminal, require_tmux

COLUMNS = [80, 120]
ROLLOUT_ID = re.compile(r"ro_[0-9a-f]+")

pytestmark = pytest.mark.usefixtures("tmux")


@pytest.fixture
def tmux() -> None:
    require_tmux()


def no_wrap(term: Terminal) -> list[str]:
    """The screen, after checking that the terminal wrapped none of its lines."""
    rows, lines = term.rows(), term.lines()
    assert rows == lines, "the terminal wrapped a line:\n" + "\n".join(rows)
    assert all(len(row) <= term.columns for row in rows)
    return rows


def ids_whole(rows: list[str], ids: list[str]) -> None:
    """Each id shows whole on a row, and no row holds a cut-off piece of one."""
    for rid in ids:
        assert any(rid in row for row in rows), (rid, rows)
    for row in rows:
        for found in ROLLOUT_ID.findall(row):
            assert found in ids, f"a cut id {found!r} in {row!r}"


def words_whole(rows: list[str], text: str) -> None:
    shown = set(" ".join(rows).split())
    missing = [word for word in text.split() if word not in shown]
    assert not missing, (missing, rows)


def run(tmp_path: Path, columns: int, *argv: str, code: int = 0) -> list[str]:
    with Terminal(tmp_path / "tmux", columns=columns) as term:
        term.start(*argv)
        assert term.wait() == code, "\n".join(term.rows())
        assert term.size() == (columns, 50)
        return no_wrap(term)


@pytest.mark.parametrize("columns", COLUMNS)
def test_rollouts_list(cli: CLI, paused: str, tmp_path: Path, columns: int) -> None:
    long_task = "a-task-with-a-rather-long-name-that-cannot-possibly-fit-in-eighty"
    make_task(tmp_path, long_task)
    made = cli(
        "pools", "create", "long", "--local", str(tmp_path / long_task), "--concurrency", "0"
    )
    assert made.code == 0, made.err
    ids = [queue_one(cli, paused), queue_one(cli, "long", "--task", f"d/{long_task}")]
    rows = run(tmp_path, columns, "rollouts", "list", "--wide")
    assert rows[0].split()[0] == "ROLLOUT"
    ids_whole(rows, ids)
    cut = next(row for row in rows if ids[1] in row)
    assert "…" in cut, "the long task name gave way, not the id"


@pytest.mark.parametrize("columns", COLUMNS)
def test_rollouts_get(cli: CLI, errored: str, tmp_path: Path, columns: int) -> None:
    message = cli("rollouts", "get", errored, "--json").json()["error"]["message"]
    rows = run(tmp_path, columns, "rollouts", "get", errored)
    assert rows[0].split() == ["Rollout:", errored]
    ids_whole(rows, [errored])
    words_whole(rows[rows.index("Error:") :], message)


@pytest.mark.parametrize("columns", COLUMNS)
def test_pools_get(cli: CLI, backend: Local, tmp_path: Path, columns: int) -> None:
    deep = tmp_path / "folders-with-long-names" / "so-that-the-path" / "passes-eighty-columns"
    make_task(deep, "a-task-whose-name-is-long-too")
    made = cli(
        "pools",
        "create",
        "coding",
        "--local",
        str(EXAMPLE),
        "--local",
        str(deep / "a-task-whose-name-is-long-too"),
    )
    assert made.code == 0, made.err
    rows = run(tmp_path, columns, "pools", "get", "coding")
    assert rows[0].split() == ["Pool:", "coding"]
    tasks = rows[rows.index("Tasks (2):") :]
    path = str(deep / "a-task-whose-name-is-long-too")
    assert path in "".join(row.strip() for row in tasks), "the path, wrapped after '/', is whole"


@pytest.mark.parametrize("columns", COLUMNS)
def test_wait(cli: CLI, paused: str, tmp_path: Path, columns: int) -> None:
    ids = [queue_one(cli, paused) for _ in range(2)]
    with Terminal(tmp_path / "tmux", columns=columns) as term:
        term.start("rollouts", "wait", *ids, "--timeout", "4")
        term.wait_for("0/2 done")
        deadline = time.monotonic() + 30
        while True:  # the first status of each arrives a moment after the view starts
            live = term.rows(history=False)
            shown = {r.split()[1]: r.split()[2] for r in live if len(r.split()) > 2}
            if all(shown.get(rid) == "queued" for rid in ids):
                break
            assert time.monotonic() < deadline, live
            time.sleep(0.05)
        ids_whole(live, ids)
        assert term.wait() == 3
        rows = no_wrap(term)
    ids_whole(rows, ids)
    assert "0/2 succeeded, 0 passed (reward > 0), 2 still running after 4s" in rows


@pytest.mark.parametrize("columns", COLUMNS)
def test_tail(cli: CLI, backend: Local, tmp_path: Path, columns: int) -> None:
    sentence = (
        "the agent explains at length what it changed and why, in one long line that no "
        "terminal of eighty or even one hundred and twenty columns could hold on a single row"
    )
    make_task(tmp_path, "talky", solve=f"echo '{sentence}'")
    assert cli("pools", "create", "talky", "--local", str(tmp_path / "talky")).code == 0
    done = cli(
        "rollouts",
        "create",
        "--agent",
        "oracle",
        "--task",
        "d/talky",
        "--pool",
        "talky",
        "--wait",
        "-q",
    )
    assert done.code == 0, done.err
    rid = done.out.strip()
    rows = run(tmp_path, columns, "rollouts", "tail", rid)
    ids_whole(rows, [rid])
    assert any(row.startswith(f"{rid}: succeeded") for row in rows), rows
    start = next(n for n, row in enumerate(rows) if "the agent explains" in row)
    words_whole(rows[start : start + 4], sentence)
    continued = rows[start + 1]
    assert continued.startswith(" " * 20), "a wrapped event continues under its text column"
