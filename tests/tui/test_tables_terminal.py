"""Every table-printing command in a real terminal (tmux, 80 and 120 columns).

For each: the terminal wrapped nothing (no row continues on the next), every id on screen
is whole, and what the issue found broken at these widths is not: job ids and rollout ids
folded in the jobs tables, task ids and error codes cut mid-word, ``codex:gpt-5.1-codex-mini``
folded at 120 columns, a timestamp in an AGE column, ``--wide`` showing fewer columns
than without it, ``claude-…``/``codex:g…`` where agent and model could not be told apart,
the ``jobs run`` header wrapping mid-word, help examples broken at a hyphen, and Python
types in usage lines and errors.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, EXAMPLE, Local
from tests.integration.conftest import make_task

from .harness import Terminal, require_tmux

COLUMNS = [80, 120]
ROLLOUT_ID = re.compile(r"\bro_[0-9a-f]{6,}")
JOB_ID = re.compile(r"\bjob-\d{8}-\d{6}-[0-9a-f]{4}\b")
AGE = re.compile(r"^\d+[smhd]$")
LONG_TASK = "a-task-whose-name-is-long-enough-to-be-cut-at-eighty"

pytestmark = pytest.mark.usefixtures("tmux")


@pytest.fixture
def tmux() -> None:
    require_tmux()


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in ``codex`` and ``claude`` on the tool path, set before the backend starts:
    they answer --version and exit 0 (a rollout of theirs changes nothing)."""
    folder = tmp_path / "tools"
    folder.mkdir()
    for name in ("codex", "claude"):
        (folder / name).write_text('#!/bin/sh\n[ "$1" = --version ] && echo 1.0.0\nexit 0\n')
        (folder / name).chmod(0o755)
    monkeypatch.setenv("ENVPOOLS_TOOL_PATH", str(folder))
    return folder


def screen(tmp_path: Path, columns: int, *argv: str, code: int = 0) -> list[str]:
    """The whole screen of ``envpools ARGV`` once it ended, checked for terminal wraps."""
    # tmux's socket lives in a short folder: a unix socket path holds 107 bytes at most.
    with (
        tempfile.TemporaryDirectory(prefix="tt-") as short,
        Terminal(Path(short), columns=columns) as term,
    ):
        term.start(*argv)
        assert term.wait(120) == code, "\n".join(term.rows())
        rows, lines = term.rows(), term.lines()
        assert rows == lines, "the terminal wrapped a line:\n" + "\n".join(rows)
        assert all(len(row) <= columns for row in rows)
        return rows


def whole(rows: list[str], pattern: re.Pattern[str], ids: set[str]) -> None:
    """Every id matching ``pattern`` on screen is one of ``ids`` (none cut), and all show."""
    found = {m for row in rows for m in pattern.findall(row)}
    assert found == ids, (sorted(found ^ ids), rows)


def header(rows: list[str], first: str) -> list[str]:
    return next(row for row in rows if row.split()[:1] == [first]).split()


def column(rows: list[str], name: str, first: str) -> list[str]:
    """The cells under ``name`` (a one-word header) of a table whose rows start with an id."""
    head = next(row for row in rows if row.split()[:1] == [first])
    start = head.index(name)
    cells = []
    for row in rows[rows.index(head) + 2 :]:
        if not row.strip():
            break
        cells.append(row[start:].split()[0] if row[start:].strip() else "")
    return cells


def cut_of(shown: str, full: str) -> bool:
    """``shown`` is ``full``, or ``full`` cut with an ellipsis (never a piece without one)."""
    return shown == full or (shown.endswith("…") and full.startswith(shown[:-1]))


def queue(cli: CLI, pool: str, agent: str, model: str | None = None, task: str = "") -> str:
    args = ["rollouts", "create", "--agent", agent, "--pool", pool, "-q"]
    args += ["--task", task or "d/fix-failing-test"] + (["--model", model] if model else [])
    made = cli(*args)
    assert made.code == 0, made.err
    return made.out.strip()


@pytest.fixture
def queued(tools: Path, cli: CLI, backend: Local, tmp_path: Path) -> list[str]:
    """Rollouts that stay queued (a pool of concurrency 0), one per agent/model."""
    make_task(tmp_path, LONG_TASK)
    made = cli(
        "pools", "create", "paused", "--local", str(EXAMPLE),
        "--local", str(tmp_path / LONG_TASK), "--concurrency", "0",
    )  # fmt: skip
    assert made.code == 0, made.err
    return [
        queue(cli, "paused", "codex", "gpt-5.1-codex-mini"),
        queue(cli, "paused", "claude-code", "claude-sonnet-4.5"),
        queue(cli, "paused", "oracle", task=f"d/{LONG_TASK}"),
    ]


# --- rollouts and pools -------------------------------------------------------------------


@pytest.mark.parametrize("columns", COLUMNS)
def test_rollouts_list_tells_agent_and_model_apart(
    cli: CLI, queued: list[str], tmp_path: Path, columns: int
) -> None:
    rows = screen(tmp_path, columns, "rollouts", "list")
    whole(rows, ROLLOUT_ID, set(queued))
    assert header(rows, "ROLLOUT")[3:5] == ["AGENT", "MODEL"]
    assert sorted(column(rows, "AGENT", "ROLLOUT")) == ["claude-code", "codex", "oracle"]
    models = column(rows, "MODEL", "ROLLOUT")
    if columns == 120:
        assert sorted(models) == ["-", "claude-sonnet-4.5", "gpt-5.1-codex-mini"]
    else:  # the model gives way, with an ellipsis, never the harness
        assert all(m == "-" or m.endswith("…") or m.startswith(("gpt", "claude")) for m in models)


@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("command", [("rollouts", "list"), ("pools", "list")])
def test_wide_never_shows_less(
    cli: CLI, queued: list[str], tmp_path: Path, columns: int, command: tuple[str, ...]
) -> None:
    first = "ROLLOUT" if command[0] == "rollouts" else "POOL"
    narrow = header(screen(tmp_path, columns, *command), first)
    wide_rows = screen(tmp_path, columns, *command, "--wide")
    wide = header(wide_rows, first)
    assert set(narrow) <= set(wide), (narrow, wide)
    assert len(wide) > len(narrow) or any("no room for" in row for row in wide_rows)
    if command[0] == "rollouts":
        whole(wide_rows, ROLLOUT_ID, set(queued))


@pytest.mark.parametrize("columns", COLUMNS)
def test_other_tables_fit(
    cli: CLI, queued: list[str], tmp_path: Path, columns: int, backend: Local
) -> None:
    """credentials, tasks, queue, agents, profiles, artifacts, capabilities."""
    stored = cli(
        "credentials",
        "store",
        "OPENAI_API_KEY",
        "--type",
        "OPENAI_API_KEY",
        stdin="sk-stand-in-0123456789",
    )
    assert stored.code == 0, stored.err
    done = cli("rollouts", "create", "--agent", "oracle", "--task", "d/fix-failing-test",
               "--pool", "coding", "--wait", "-q")  # fmt: skip
    if done.code != 0:  # no such pool yet: make it and run one rollout to have artifacts
        assert cli("pools", "create", "coding", "--local", str(EXAMPLE)).code == 0
        done = cli("rollouts", "create", "--agent", "oracle", "--task", "d/fix-failing-test",
                   "--pool", "coding", "--wait", "-q")  # fmt: skip
    assert done.code == 0, done.err
    rid = done.out.strip()

    rows = screen(tmp_path, columns, "credentials", "list")
    assert header(rows, "ID")[:2] == ["ID", "NAME"]
    assert AGE.match(column(rows, "UPDATED", "ID")[0]), rows
    rows = screen(tmp_path, columns, "tasks", "list", "paused")
    assert {r.split()[0] for r in rows[2:] if r.strip()} == {"fix-failing-test", LONG_TASK}
    screen(tmp_path, columns, "queue", "status")
    rows = screen(tmp_path, columns, "agents", "list")
    assert {"codex", "claude-code", "opencode"} <= {r.split()[0] for r in rows if r.strip()}
    screen(tmp_path, columns, "config", "profiles")
    rows = screen(tmp_path, columns, "rollouts", "artifacts", rid)
    assert any(r.split()[:1] == ["verifier/test-stdout.txt"] for r in rows), rows
    rows = screen(tmp_path, columns, "rollouts", "list", "--status", "succeeded")
    whole(rows, ROLLOUT_ID, {rid})
    screen(tmp_path, columns, "capabilities", "get")
    rows = screen(tmp_path, columns, "rollouts", "usage", rid)
    assert any(rid in row for row in rows)


# --- jobs -----------------------------------------------------------------------------------


def run_job(cli: CLI, suite: Path, name: str) -> str:
    ran = cli("jobs", "run", "--tasks", str(suite), "-a", "oracle",
              "-a", "codex:gpt-5.1-codex-mini", "--name", name, "-n", "6", "-q")  # fmt: skip
    assert ran.code == 0, ran.err
    return ran.out.strip()


@pytest.fixture
def jobs(tools: Path, cli: CLI, backend: Local, tmp_path: Path) -> dict[str, object]:
    """A finished job: oracle and codex (a stand-in that changes nothing, so it fails) on
    three tasks, one with a long id and one whose verifier writes no reward."""
    suite = tmp_path / "suite"
    make_task(suite, "alpha", solve="echo fixed", test="echo 1 > /logs/verifier/reward.txt")
    make_task(suite, LONG_TASK)
    make_task(suite, "broken-verifier", test="echo 'no reward' >&2; exit 3")
    assert (
        cli(
            "credentials",
            "store",
            "OPENAI_API_KEY",
            "--type",
            "OPENAI_API_KEY",
            stdin="sk-stand-in-0123456789",
        ).code
        == 0
    )
    ids = [run_job(cli, suite, "first")]
    rollouts = {
        r["rollout_id"]
        for job in ids
        for r in cli("jobs", "show", job, "--rollouts", "--json").json()
    }
    return {"ids": ids, "rollouts": rollouts, "suite": suite}


@pytest.mark.parametrize("columns", COLUMNS)
def test_jobs_list_ids_whole_and_ages(
    jobs: dict[str, object], tmp_path: Path, columns: int
) -> None:
    rows = screen(tmp_path, columns, "jobs", "list")
    whole(rows, JOB_ID, set(jobs["ids"]))  # type: ignore[arg-type]
    assert header(rows, "ID")[-1] == "AGE"
    ages = [row.split()[-1] for row in rows[2:] if row.strip()]
    assert len(ages) == 1 and all(AGE.match(age) for age in ages), rows


@pytest.mark.parametrize("columns", COLUMNS)
def test_jobs_show_keeps_agent_labels_whole(
    jobs: dict[str, object], tmp_path: Path, columns: int
) -> None:
    job = jobs["ids"][0]  # type: ignore[index]
    rows = screen(tmp_path, columns, "jobs", "show", job)
    labels = [row.split()[1] for row in rows if row.split()[:1] == ["alpha"]]
    assert sorted(labels) == ["codex:gpt-5.1-codex-mini", "oracle"], rows
    totals = [row.split()[0] for row in rows[rows.index("") :] if row.strip()]
    assert "codex:gpt-5.1-codex-mini" in totals, rows
    broken = [
        row.split() for row in rows if row.split() and cut_of(row.split()[0], "broken-verifier")
    ]
    assert len(broken) == 2 and all(r[2] == "0/0+" and r[3] == "1" for r in broken), rows
    assert any("reached no verdict (verifier 2)" in row for row in rows), rows


@pytest.mark.parametrize("columns", COLUMNS)
def test_jobs_show_rollouts_one_row_each(
    jobs: dict[str, object], tmp_path: Path, columns: int
) -> None:
    job = jobs["ids"][0]  # type: ignore[index]
    rows = screen(tmp_path, columns, "jobs", "show", job, "--rollouts")
    mine = {rid for rid in jobs["rollouts"] if any(rid in row for row in rows)}  # type: ignore[attr-defined]
    whole(rows, ROLLOUT_ID, mine)
    body = [row for row in rows[2:] if row.strip()]
    assert len(body) == len(mine) == 6, "one row per rollout, none folded onto a second"
    for row in body:  # a task id whole, or cut with an ellipsis: never folded
        assert any(cut_of(row.split()[1], t) for t in ("alpha", "broken-verifier", LONG_TASK))
    codes = [row.split()[-1] for row in body if " error " in row]
    assert len(codes) == 2 and all(cut_of(c, "reward_missing") for c in codes), body


@pytest.mark.parametrize("columns", COLUMNS)
def test_jobs_compare_fits(jobs: dict[str, object], cli: CLI, tmp_path: Path, columns: int) -> None:
    first = jobs["ids"][0]  # type: ignore[index]
    second = run_job(cli, jobs["suite"], "second")  # type: ignore[arg-type]
    rows = screen(tmp_path, columns, "jobs", "compare", first, second)
    assert any(row.split()[:1] == ["codex:gpt-5.1-codex-mini"] for row in rows), rows


@pytest.mark.parametrize("columns", COLUMNS)
def test_jobs_run_live_view_never_wraps_mid_word(
    tools: Path, cli: CLI, backend: Local, tmp_path: Path, columns: int
) -> None:
    suite = tmp_path / "a-suite-folder-whose-name-makes-the-header-long"
    make_task(suite, LONG_TASK)
    make_task(suite, "broken-verifier", test="exit 3")
    rows = screen(tmp_path, columns, "jobs", "run", "--tasks", str(suite), "-a", "oracle",
                  "-a", "nop", "-k", "2")  # fmt: skip
    text = " ".join(rows)
    assert "rollouts in pool" in text and "rollouts ended" in text
    whole(rows, JOB_ID, set(JOB_ID.findall(text)))
    assert all(len(j) == len("job-20261207-101637-6a47") for j in JOB_ID.findall(text))


# --- help and errors ------------------------------------------------------------------------


@pytest.mark.parametrize("columns", COLUMNS)
def test_help_examples_paste_whole(tmp_path: Path, columns: int) -> None:
    rows = screen(tmp_path, columns, "rollouts", "create", "--help")
    start = next(n for n, row in enumerate(rows) if row.strip().startswith("Example:"))
    pasted = []
    for row in rows[start:]:
        part = row.strip().removeprefix("Example:").strip()
        pasted.append(part.removesuffix(" \\"))
        if not part.endswith(" \\") and part:
            break
    command = " ".join(p for p in pasted if p)
    assert command == (
        "envpools rollouts create --agent codex --task envpools-examples/fix-failing-test "
        "--pool local-coding --wait"
    )


@pytest.mark.parametrize("columns", COLUMNS)
def test_no_python_types_in_usage_or_errors(
    tools: Path, cli: CLI, backend: Local, tmp_path: Path, columns: int
) -> None:
    rows = screen(tmp_path, columns, "rollouts", "wait", "--help")
    assert rows[0].split()[-1] == "ROLLOUT_ID..." and not any("<" in row for row in rows)
    rows = screen(tmp_path, columns, "rollouts", "cancel", code=2)
    assert "Missing argument 'ROLLOUT_ID...'" in " ".join(rows)
    assert cli("pools", "create", "p", "--local", str(EXAMPLE)).code == 0
    rows = screen(
        tmp_path, columns, "rollouts", "create", "--agent", "no-such-agent",
        "--task", "d/fix-failing-test", "--pool", "p", code=2,
    )  # fmt: skip
    text = " ".join(rows)
    assert "Available harnesses:" in text and "['" not in text, rows
