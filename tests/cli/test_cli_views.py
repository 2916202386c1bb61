"""The command line's second pass: statuses, tables, output shapes, id prefixes.

Everything runs against the real local backend on port 0.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import envpools_cli
from envpools_cli.models import TERMINAL_STATUSES, RolloutStatus
from envpools_cli.output.units import human_bytes, relative_age
from tests.integration.conftest import make_task

from .conftest import CLI, EXAMPLE, Local


@pytest.fixture
def paused(cli: CLI, backend: Local) -> str:
    """A pool that never starts anything: its rollouts stay queued until cancelled."""
    assert cli("pools", "create", "paused", "--local", str(EXAMPLE), "--concurrency", "0").code == 0
    return "paused"


def queue_one(cli: CLI, pool: str, *extra: str) -> str:
    result = cli(
        "rollouts",
        "create",
        "--agent",
        "oracle",
        "--task",
        "d/fix-failing-test",
        "--pool",
        pool,
        "-q",
        *extra,
    )
    assert result.code == 0, result.err
    return result.out.strip()


class TestStatus:
    def test_one_definition_of_terminal(self) -> None:
        assert {s for s in RolloutStatus if s.is_terminal} == TERMINAL_STATUSES
        assert RolloutStatus.terminal("Cancelled") and not RolloutStatus.terminal("verifying")
        assert RolloutStatus.succeeded("completed"), "the hosted service's older spelling"
        assert not RolloutStatus.terminal("paused") and RolloutStatus.parse(None) is None

    def test_no_hand_written_set_of_terminal_statuses(self) -> None:
        """Whether a status is terminal is asked of ``models`` (or, where pydantic may not be
        imported, of ``shared``, from which ``models`` takes the set) everywhere."""
        import ast

        from envpools_cli import shared

        assert shared.TERMINAL_STATUSES == TERMINAL_STATUSES
        package = Path(envpools_cli.__file__).parent
        found = []
        for source in sorted(package.rglob("*.py")):
            if source == Path(shared.__file__):
                continue
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Set | ast.Tuple | ast.List):
                    named = {
                        item.value
                        for item in node.elts
                        if isinstance(item, ast.Constant) and item.value in TERMINAL_STATUSES
                    }
                    if len(named) >= 3:  # a pair (cancelled, error) may be a rule of its own
                        found.append(f"{source.relative_to(package)}:{node.lineno}")
        assert not found, f"hand-written terminal status sets (use RolloutStatus): {found}"

    def test_a_cancelled_rollout_ends_a_wait_as_not_succeeded(self, cli: CLI, paused: str) -> None:
        rid = queue_one(cli, paused)
        assert cli("rollouts", "cancel", rid, "--yes").code == 0
        result = cli("rollouts", "wait", rid, "--timeout", "30", "-o", "json")
        assert result.code == 5, result.err
        assert RolloutStatus(result.json()["status"]) is RolloutStatus.CANCELLED
        assert "0/1 succeeded" in result.err


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(*args: str, columns: int, rows: int = 50, code: int = 0) -> list[str]:
    """Run envpools on a real pseudo-terminal of this size; the screen's lines, colours removed."""
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "envpools_cli", *args],
        stdin=replica,
        stdout=replica,
        stderr=replica,
        env={**os.environ, "COLUMNS": str(columns), "LINES": str(rows), "TERM": "xterm"},
    )
    os.close(replica)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert process.wait(timeout=60) == code, output.decode(errors="replace")
    text = ANSI.sub("", output.decode(errors="replace")).replace("\r\n", "\n")
    return text.splitlines()


class TestTables:
    @pytest.mark.parametrize("columns", [80, 120])
    def test_ids_are_whole_and_rows_fit(
        self, cli: CLI, paused: str, columns: int, tmp_path: Path
    ) -> None:
        long_task = "a-task-with-a-rather-long-name-that-cannot-possibly-fit-in-eighty"
        make_task(tmp_path, long_task)
        created = cli(
            "pools", "create", "long", "--local", str(tmp_path / long_task), "--concurrency", "0"
        )
        assert created.code == 0, created.err
        ids = [queue_one(cli, paused) for _ in range(2)]
        result = cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            f"a-dataset/{long_task}",
            "--pool",
            "long",
            "-q",
        )
        assert result.code == 0, result.err
        ids.append(result.out.strip())
        lines = on_terminal("rollouts", "list", columns=columns)
        assert all(len(line) <= columns for line in lines), lines
        assert lines[0].split() == ["ROLLOUT", "STATUS", "TASK", "AGENT", "MODEL", "REWARD", "AGE"]
        rows = {line.split()[0]: line for line in lines[2:] if line.strip()}
        assert set(rows) == set(ids), "one line per rollout, each starting with its whole id"
        for row in rows.values():
            assert row.split()[1] == "queued" and row.split()[-1] in {f"{n}s" for n in range(60)}
        cut = rows[ids[2]].split()[2]
        assert cut.endswith("…") and long_task.startswith(cut[:-1]), "the text column gave way"
        assert len(cut) > 40 if columns == 120 else len(cut) < 25

    def test_wide_adds_columns_and_pipes_get_timestamps(self, cli: CLI, paused: str) -> None:
        rid = queue_one(cli, paused)
        wide = on_terminal("rollouts", "list", "--wide", columns=200)
        assert wide[0].split() == [
            "ROLLOUT",
            "STATUS",
            "TASK",
            "DATASET",
            "AGENT",
            "MODEL",
            "POOL",
            "REWARD",
            "DURATION",
            "ERROR",
            "AGE",
        ]
        assert wide[2].split()[0] == rid and paused in wide[2].split()
        piped = cli("rollouts", "list")
        header, row = piped.lines()
        assert header.split("\t")[-1] == "CREATED_AT"
        created = row.split("\t")[-1]
        assert created == cli("rollouts", "get", rid, "--json").json()["created_at"]

    def test_pools_list_wide(self, cli: CLI, paused: str) -> None:
        narrow = on_terminal("pools", "list", columns=120)
        wide = on_terminal("pools", "list", "--wide", columns=160)
        assert "STATUS" not in narrow[0].split() and "CAPACITY" not in narrow[0]
        assert wide[0].split()[-6:] == ["STATUS", "CAPACITY", "MAX", "QUEUE", "AGENTS", "AGE"]
        assert wide[2].split()[0] == paused

    def test_ages_and_sizes(self) -> None:
        now = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)
        assert relative_age("2025-01-10T11:59:15Z", now) == "45s"
        assert relative_age("2025-01-10T11:56:59.877Z", now) == "3m"
        assert relative_age("2025-01-10T10:00:00+00:00", now) == "2h"
        assert relative_age("2025-01-05T12:00:00Z", now) == "5d"
        assert relative_age("2025-01-10T12:00:05Z", now) == "0s", "clock skew is not negative"
        assert relative_age(None, now) == relative_age("yesterday", now) == "-"
        assert [human_bytes(n) for n in (512, 1536, 20 * 2**20, 3 * 2**30)] == [
            "512 B",
            "1.5 KiB",
            "20.0 MiB",
            "3.0 GiB",
        ]

    def test_download_progress_speaks_binary_units(self) -> None:
        from rich.console import Console

        from envpools_cli.output.progress import download_progress

        progress = download_progress()
        task_id = progress.add_task("a.zip", total=3 * 2**20)
        progress.advance(task_id, 3 * 2**19)
        task = progress.tasks[0]
        console = Console(width=200, no_color=True)
        with console.capture() as capture:
            for column in progress.columns:
                console.print(column(task))
        shown = capture.get()
        assert "1.5/3.0 MiB" in shown and " MB" not in shown and "kB" not in shown


CREATE = ("rollouts", "create", "--agent", "oracle", "--task", "d/fix-failing-test")


class TestShapes:
    """One resource asked about: an object. Many: a list (README, "Output")."""

    def test_create_one_is_an_object_and_many_a_list(self, cli: CLI, paused: str) -> None:
        one = cli(*CREATE, "--pool", paused, "-o", "json")
        assert one.code == 0, one.err
        assert one.json()["rollout_id"].startswith("ro_")
        as_yaml = cli(*CREATE, "--pool", paused, "-o", "yaml")
        assert yaml.safe_load(as_yaml.out)["status"] == "queued"
        many = cli(*CREATE, "--pool", paused, "--count", "2", "--json")
        assert many.code == 0, many.err
        assert [type(doc) for doc in many.json()] == [dict, dict]

    def test_a_file_holding_a_list_gets_a_list(self, cli: CLI, paused: str, tmp_path: Path) -> None:
        request = {
            "task_ref": {"dataset": "d", "task_id": "fix-failing-test"},
            "agent": {"harness": "oracle"},
            "pool_id": paused,
        }
        (tmp_path / "one.json").write_text(json.dumps(request))
        (tmp_path / "list.json").write_text(json.dumps([request]))
        assert isinstance(
            cli("rollouts", "create", "-f", str(tmp_path / "one.json"), "--json").json(), dict
        )
        assert isinstance(
            cli("rollouts", "create", "-f", str(tmp_path / "list.json"), "--json").json(), list
        )

    def test_cancel_and_wait_follow_the_number_of_ids(self, cli: CLI, paused: str) -> None:
        first, second = queue_one(cli, paused), queue_one(cli, paused)
        one = cli("rollouts", "cancel", first, "--yes", "--json")
        assert one.json()["rollout_id"] == first
        both = cli("rollouts", "cancel", first, second, "--yes", "--json")
        assert [d["rollout_id"] for d in both.json()] == [first, second]
        waited = cli("rollouts", "wait", first, "--json")
        assert waited.json()["rollout_id"] == first
        assert len(cli("rollouts", "wait", first, second, "--json").json()) == 2
        listed = cli("rollouts", "list", "--limit", "1", "--json")
        assert isinstance(listed.json(), list), "list is about many, even when one comes back"
        jsonl = cli("rollouts", "wait", first, second, "-o", "jsonl").lines()
        assert [json.loads(line)["rollout_id"] for line in jsonl] == [first, second]


def shortest_unique_prefix(rid: str, others: list[str]) -> str:
    for size in range(4, len(rid) + 1):
        if not any(o.startswith(rid[:size]) for o in others if o != rid):
            return rid[:size]
    raise AssertionError("ids are unique")


class TestIdPrefixes:
    def test_a_unique_prefix_names_the_rollout(self, cli: CLI, paused: str) -> None:
        ids = [queue_one(cli, paused) for _ in range(3)]
        target = ids[1]
        prefix = shortest_unique_prefix(target, ids)
        assert len(prefix) < len(target)
        assert cli("rollouts", "get", prefix, "--json").json()["rollout_id"] == target
        bare = prefix.removeprefix("ro_")
        if len(bare) >= 4:
            assert cli("rollouts", "summary", bare, "--json").json()["rollout_id"] == target
        cancelled = cli("rollouts", "cancel", prefix, "--yes", "--json")
        assert cancelled.json()["rollout_id"] == target, cancelled.err
        assert cli("rollouts", "wait", prefix, "-q").out.strip() == target
        assert cli("rollouts", "artifacts", prefix, "--json").code == 0

    def test_every_command_taking_an_id_takes_a_prefix(self, cli: CLI, paused: str) -> None:
        ids = [queue_one(cli, paused) for _ in range(3)]
        target = ids[0]
        prefix = shortest_unique_prefix(target, ids)
        assert cli("rollouts", "usage", prefix, "--json").json()["rollout_id"] == target
        bundle = cli("rollouts", "support-bundle", prefix)
        assert bundle.code == 0 and target in bundle.out, bundle.err
        tail = cli("rollouts", "tail", prefix, "--no-follow", "-o", "jsonl")
        assert tail.code == 0 and json.loads(tail.lines()[0])["event"] == "lifecycle", tail.err
        assert cli("rollouts", "replay", prefix, "--json").json()["replay_of"] == target
        download = cli("rollouts", "download", prefix)
        assert download.code == 6 and f"rollout {target} has no artifacts" in download.err

    def test_an_ambiguous_prefix_lists_the_matches(self, cli: CLI, paused: str) -> None:
        ids = [queue_one(cli, paused) for _ in range(2)]
        common = next(
            ids[0][:n] for n in range(len(ids[0]), 0, -1) if ids[1].startswith(ids[0][:n])
        )
        result = cli("rollouts", "get", common)
        assert result.code == 2 and result.out == ""
        assert "matches 2 rollouts" in result.err
        assert all(rid in result.err for rid in ids), result.err
        as_json = cli("rollouts", "get", common, "-o", "json")
        assert json.loads(as_json.err)["error"]["exit_code"] == 2

    def test_no_match_is_not_found(self, cli: CLI, paused: str) -> None:
        queue_one(cli, paused)
        assert cli("rollouts", "get", "ro_ffff").code == 6


class TestConnectionRefused:
    def test_the_local_url_refusing_suggests_local_up(self, cli: CLI, backend: Local) -> None:
        backend.thread.stop()  # the port it listened on now refuses connections
        result = cli("pools", "list")
        assert result.code == 7, result.err
        assert "Connection refused" in result.err
        assert "envpools local up" in result.err
        as_json = json.loads(cli("rollouts", "list", "--json").err)["error"]
        assert "envpools local up" in as_json["hint"]

    def test_a_remote_failure_does_not(self, cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
        # A name that cannot resolve: a network failure, but not a refused local port.
        monkeypatch.setenv("ENVPOOLS_API_URL", "http://envpools-test.invalid:9")
        monkeypatch.setenv("ENVPOOLS_API_KEY", "k")
        result = cli("pools", "list")
        assert result.code == 7 and "local up" not in result.err, result.err


@pytest.fixture
def stand_in_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``codex`` on the tool path: the backend can start it, but no key is stored."""
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "codex").write_text("#!/bin/sh\nexit 0\n")
    (folder / "codex").chmod(0o755)
    monkeypatch.setenv("ENVPOOLS_TOOL_PATH", str(folder))


@pytest.fixture
def errored(stand_in_codex: None, cli: CLI, backend: Local) -> str:
    """A rollout that ended in ``error`` (credentials_missing)."""
    assert cli("pools", "create", "coding", "--local", str(EXAMPLE)).code == 0
    result = cli(
        "rollouts",
        "create",
        "--agent",
        "codex",
        "--model",
        "gpt-5.1-codex-mini",
        "--task",
        "d/fix-failing-test",
        "--pool",
        "coding",
        "--wait",
        "-q",
    )
    assert result.code == 5, result.err
    return result.out.strip()


def sections_of(lines: list[str]) -> list[str]:
    return [line[:-1] for line in lines if line and not line[0].isspace() and line.endswith(":")]


def words_whole(view: list[str], text: str) -> None:
    """Every word of ``text`` appears whole in the view (none was cut across lines)."""
    shown = set(" ".join(view).split())
    missing = [word for word in text.split() if word not in shown]
    assert not missing, (missing, view)


class TestRecordViews:
    """``get`` of one resource reads like ``kubectl describe``; JSON stays the document."""

    @pytest.mark.parametrize("columns", [80, 120])
    def test_rollout_get_in_sections(self, cli: CLI, errored: str, columns: int) -> None:
        document = cli("rollouts", "get", errored, "--json").json()
        view = on_terminal("rollouts", "get", errored, columns=columns)
        assert all(len(line) <= columns for line in view), view
        assert view[0].split() == ["Rollout:", errored], "the id whole on the first line"
        assert view[1].split() == ["Status:", "error", "(credentials_missing)"]
        assert sections_of(view) == [
            "Task",
            "Agent",
            "Timing",
            "Usage",
            "Error",
            "Events",
            "Routing",
        ]
        events = view[view.index("Events:") + 1 : view.index("Routing:")]
        assert any("lifecycle: status error" in line for line in events), events
        error = view[view.index("Error:") + 1 :]
        assert error[0].split() == ["Code:", "credentials_missing"]
        message = document["error"]["message"]
        words_whole(error, message)
        assert any(line.split()[:2] == ["Harness:", "codex"] for line in view)
        assert any(line.split()[:2] == ["Model:", "gpt-5.1-codex-mini"] for line in view)
        created = next(line for line in view if line.strip().startswith("Created:"))
        assert re.fullmatch(r"\s+Created:\s+\S+T\d\d:\d\d:\d\dZ \(\d+s ago\)", created), created
        assert not any(line.rstrip().endswith(("{", ",")) for line in view), "no cut JSON blobs"

    def test_rollout_json_and_pipes_are_unchanged(self, cli: CLI, errored: str) -> None:
        from envpools_cli import client as ep

        served = ep.get_rollout(
            errored,
            backend_base=os.environ["ENVPOOLS_API_URL"],
            api_key=os.environ["ENVPOOLS_API_KEY"],
        )
        assert cli("rollouts", "get", errored, "-o", "json").json() == served
        assert yaml.safe_load(cli("rollouts", "get", errored, "-o", "yaml").out) == served
        piped = cli("rollouts", "get", errored)
        assert piped.code == 0
        rows = piped.out.splitlines()
        assert rows[0] == f"Rollout:  {errored}"
        message = next(r for r in rows if r.strip().startswith("Message:"))
        assert message.split(None, 1)[1] == served["error"]["message"], "piped: one row a line"
        assert f"Created:   {served['created_at']}" in piped.out, "piped: the exact timestamp"
        picked = cli("rollouts", "get", errored, "--fields", "rollout_id,status")
        assert picked.lines() == [f"rollout_id\t{errored}", "status\terror"]

    @pytest.mark.parametrize("columns", [80, 120])
    def test_pool_get_in_sections(
        self, cli: CLI, backend: Local, tmp_path: Path, columns: int
    ) -> None:
        deep = tmp_path / "a-folder-with-a-long-name" / "and-another-one-inside-it" / "tasks"
        make_task(deep, "a-task-whose-name-is-long-too")
        created = cli(
            "pools",
            "create",
            "coding",
            "--local",
            str(EXAMPLE),
            "--local",
            str(deep / "a-task-whose-name-is-long-too"),
            "--tag",
            "py",
            "--tag",
            "gpu",
        )
        assert created.code == 0, created.err
        view = on_terminal("pools", "get", "coding", columns=columns)
        assert all(len(line) <= columns for line in view), view
        assert view[0].split() == ["Pool:", "coding"]
        assert sections_of(view) == ["Tasks (2)", "Timing"]
        assert any(line.split() == ["Tags:", "py,", "gpu"] for line in view)
        tasks = view[view.index("Tasks (2):") + 1 :]
        labels = {line.split()[0] for line in tasks if line.strip()}
        assert {"fix-failing-test:", "a-task-whose-name-is-long-too:"} <= labels
        path = str(deep / "a-task-whose-name-is-long-too")
        joined = "".join(line.strip() for line in tasks if "Timing" not in line)
        assert path in joined.replace(" ", ""), "a long path wraps after a '/', whole"
        served = cli("pools", "get", "coding", "--json").json()
        assert served["pool_id"] == "coding" and len(served["tasks"]) == 2

    def test_capabilities_get_in_sections(self, cli: CLI, backend: Local) -> None:
        view = on_terminal("capabilities", "get", columns=80)
        assert all(len(line) <= 80 for line in view), view
        assert sections_of(view)[:2] == ["Agents", "Task backends"]
        agents = view[view.index("Agents:") + 1 :]
        assert agents[0].split()[:2] == ["oracle:", "available"]
        codex = next(n for n, line in enumerate(agents) if line.split()[0] == "codex:")
        reason = cli("capabilities", "get", "--json").json()
        (entry,) = [a for a in reason["agents"] if a["name"] == "codex"]
        if not entry["available"]:
            words_whole(agents[codex : codex + 3], entry["reason"])
        assert "cli" in reason and "agents" in reason, "JSON is the document"


def test_the_usage_panel_is_as_wide_as_its_content(cli: CLI, errored: str) -> None:
    panel = [line for line in on_terminal("rollouts", "usage", errored, columns=160) if line]
    assert panel[0].startswith("╭─ usage · " + errored) and panel[-1].startswith("╰")
    widths = {len(line) for line in panel}
    assert len(widths) == 1, "a closed box"
    assert widths.pop() < 70, panel


def test_wrap_breaks_between_words_or_after_separators() -> None:
    from envpools_cli.output.describe import wrap

    text = "harness 'codex': store one with `envpools credentials store OPENAI_API_KEY`"
    lines = wrap(text, 30)
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(lines).split() == text.split(), "no word was cut"
    path = "/tmp/" + "/".join(["segment"] * 8) + "/leaf"
    broken = wrap(path, 20)
    assert "".join(broken) == path and all(len(line) <= 20 for line in broken)
    assert all(line.endswith("/") for line in broken[:-1]), broken


class TestWaitProgress:
    """``wait`` / ``create --wait`` say how each rollout is doing, and why one ended badly."""

    def test_an_error_shows_its_code_and_message(self, cli: CLI, errored: str) -> None:
        message = cli("rollouts", "get", errored, "--json").json()["error"]["message"]
        result = cli("rollouts", "wait", errored, "-q")
        assert result.code == 5 and result.out.strip() == errored
        assert f"{errored}: error credentials_missing: {message}" in result.err.splitlines()
        assert "0/1 succeeded, 0 passed (reward > 0), 1 error" in result.err

    def test_succeeded_is_not_passed(self, cli: CLI, backend: Local) -> None:
        assert cli("pools", "create", "coding", "--local", str(EXAMPLE)).code == 0
        nop = cli(
            "rollouts",
            "create",
            "--agent",
            "nop",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--count",
            "2",
            "-q",
        )
        ids = nop.out.split()
        result = cli("rollouts", "wait", *ids, "--json")
        rewards = [(doc["status"], doc["reward_primary"]) for doc in result.json()]
        assert rewards == [("succeeded", 0.0), ("succeeded", 0.0)], "the tests failed: reward 0"
        assert result.code == 0, "succeeded is still exit 0 without --min-reward"
        assert "2/2 succeeded, 0 passed (reward > 0)" in result.err
        # Plain status lines, one per change, when stderr is not a terminal.
        assert f"{ids[0]}: succeeded" in result.err.splitlines()
        oracle = cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--wait",
            "--min-reward",
            "1",
            "-q",
        )
        assert oracle.code == 0, oracle.err
        assert "1/1 succeeded, 1 passed (reward ≥ 1)" in oracle.err
        assert f"{oracle.out.strip()}: succeeded" in oracle.err.splitlines()
        low = cli("rollouts", "wait", ids[0], "--min-reward", "0.5", "-q")
        assert low.code == 5 and "1/1 succeeded, 0 passed (reward ≥ 0.5)" in low.err

    def test_a_live_line_per_rollout_on_a_terminal(self, cli: CLI, paused: str) -> None:
        ids = [queue_one(cli, paused) for _ in range(2)]
        screen = on_terminal("rollouts", "wait", *ids, "--timeout", "2", columns=80, code=3)
        for rid in ids:
            live = [line for line in screen if rid in line.split() and "queued" in line.split()]
            assert live, screen
            assert all(len(line) <= 80 for line in live)
        assert any("0/2 done" in line for line in screen), screen
        assert "0/2 succeeded, 0 passed (reward > 0), 2 still running after 2s" in screen


@pytest.mark.parametrize("columns", [80, 120])
def test_other_records_wrap_between_words(cli: CLI, errored: str, columns: int) -> None:
    """summary, metrics and --fields views: key/value rows, long values wrapped whole."""
    summary = cli("rollouts", "summary", errored, "--json").json()
    view = on_terminal("rollouts", "summary", errored, columns=columns)
    assert all(len(line) <= columns for line in view), view
    assert view[0].split() == ["rollout_id:", errored]
    last = view[next(n for n, line in enumerate(view) if line.startswith("last_event:")) :]
    words_whole(last, str(summary["last_event"]["data"]["error"]["message"]))
    picked = on_terminal("rollouts", "get", errored, "--fields", "error", columns=columns)
    assert all(len(line) <= columns for line in picked), picked
    assert picked[0].startswith('error:  {"code":"credentials_missing"')
    message = cli("rollouts", "get", errored, "--json").json()["error"]["message"]
    words_whole(picked, message.split(" ", 1)[1].rsplit(" ", 1)[0])  # inside JSON quotes
