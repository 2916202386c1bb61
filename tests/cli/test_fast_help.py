"""``--help`` from the screens ``scripts/update-screens`` generated (issues 12, 25): the same
text as the full CLI, for every command, without importing the app; a narrow terminal or
anything but a plain help request falls back to the full CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envpools_cli.app import full_command, run
from envpools_cli.fast import help as fasthelp
from envpools_cli.fast.screens import SCREENS

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("typer", "click", "rich", "pydantic", "httpx", "keyring", "envpools_cli.app")


def _envpools(*args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """stdout of ``python -X importtime -m envpools_cli ARGS`` and the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "envpools_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return done.stdout, modules


def _full(*args: str, columns: str = "80") -> str:
    """What the full CLI (Typer) prints, in a process of its own."""
    code = "import sys; from envpools_cli.app import run; sys.exit(run(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": columns},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(
    "args",
    [("--help",), ("-h",), ("rollouts", "--help"), ("rollouts", "get", "--help"), ("local", "-h")],
)
def test_help_is_the_full_clis_and_imports_none_of_it(args: tuple[str, ...]) -> None:
    shown, modules = _envpools(*args)
    expected = _full(*args)
    assert shown == expected
    assert expected.startswith("Usage: envpools")
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}
    assert not [m for m in modules if m.startswith("envpools_cli.commands")]


def _paths(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in sorted(getattr(node, "commands", {}).items()):
        found += _paths(sub, (*path, name))
    return found


def test_the_generated_screens_and_tree_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update-screens"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_every_commands_screen_equals_typers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    paths = _paths(full_command())
    assert len(paths) > 50
    assert sorted(SCREENS) == sorted(" ".join(path) for path in paths)
    for number, path in enumerate(paths):
        assert fasthelp.fast_help([*path, "--help"]) == 0
        shown = capsys.readouterr().out
        assert shown == SCREENS[" ".join(path)][0]
        # The full CLI builds the commands it shows each time: every group and every
        # third command is enough to catch a rendering that differs.
        if len(path) < 2 or number % 3 == 0:
            assert run([*path, "--help"]) == 0
            assert capsys.readouterr().out == shown, path


def test_a_narrow_terminal_gets_typers_own_wrapping() -> None:
    narrow, modules = _envpools("rollouts", "--help", env={"COLUMNS": "60"})
    assert narrow == _full("rollouts", "--help", columns="60") != _full("rollouts", "--help")
    assert "typer" in {m.split(".")[0] for m in modules}


@pytest.mark.parametrize(
    "argv",
    [
        ["nosuch", "--help"],  # the full CLI says "No such command"
        ["--profile", "x", "--help"],  # options: the full CLI parses them
        ["rollouts", "get", "ro_1", "--help"],  # an argument: likewise
        ["rollouts", "--help", "extra"],
    ],
)
def test_anything_but_a_plain_help_request_goes_to_the_full_cli(argv: list[str]) -> None:
    assert fasthelp.fast_help(argv) is None


def test_an_unknown_command_gets_the_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "envpools_cli", "nosuch", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "No such command 'nosuch'" in done.stderr
    assert done.stdout == ""
