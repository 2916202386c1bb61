"""Start-up is a feature: each fast path imports only what it uses (DESIGN.md, budgets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.timing import fastest_ratio

PROBE = """
import json, sys
from envpools_cli.__main__ import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


def modules_after(*args: str, env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def server_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if m.startswith("envpools_cli.server")}


HEAVY = {"httpx", "pydantic", "rich", "keyring", "fastapi", "uvicorn", "yaml"}


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("-V",),
        ("completion", "bash"),
        ("completion", "zsh"),
        ("completion", "fish"),
    ],
)
def test_fast_paths_import_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = modules_after(*args)
    assert tops(modules) & HEAVY == set()
    assert not server_modules(modules)


def test_help_imports_no_client_server_or_keyring() -> None:
    modules = modules_after("--help")  # the first: the app renders it (then it is kept)
    assert tops(modules) & {"httpx", "pydantic", "keyring", "fastapi", "uvicorn"} == set()
    assert not server_modules(modules)


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """Every module ``envpools ARGS`` imports beyond a bare interpreter (``-X importtime``)."""

    def run(argv: list[str]) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=True,
        )
        return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}

    return run(["-m", "envpools_cli", *args]) - run(["-c", "pass"])


# What an answer from a snapshot may import: the entry point, the snapshot reader and
# their leaves. Typer, Click, Rich, pydantic, the app or a command module coming back
# would put --help at 5-15x an interpreter start again.
SNAPSHOT_READERS = {"envpools_cli", "envpools_cli.paths", "envpools_cli.snapshots", "runpy"}


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("rollouts", "--help"), ("jobs", "-h")])
def test_kept_help_imports_only_the_snapshot_reader(args: tuple[str, ...]) -> None:
    imported(*args)  # renders and keeps it
    found = imported(*args) - SNAPSHOT_READERS
    assert found == {"envpools_cli.fasthelp"}


def test_a_tab_press_imports_only_the_engine() -> None:
    env = {"_ENVPOOLS_COMPLETE": "bash"}
    imported("2", "envpools", "rollouts", "", env=env)  # builds and keeps the command tree
    found = imported("2", "envpools", "rollouts", "", env=env) - SNAPSHOT_READERS
    assert found == {
        "envpools_cli.completion",
        "envpools_cli.completion.engine",
        "envpools_cli.completion.scripts",
        "envpools_cli.completion.spec",
        "envpools_cli.completion.values",
    }


def test_json_path_imports_no_rich_keyring_or_server() -> None:
    env = {"ENVPOOLS_API_KEY": "ep_test", "ENVPOOLS_API_URL": "http://127.0.0.1:9"}
    modules = modules_after("rollouts", "get", "ro_1", "-o", "json", env=env)
    assert "httpx" in tops(modules), "it did reach the client"
    assert (
        tops(modules)
        & {"rich", "keyring", "fastapi", "uvicorn", "yaml", "secretstorage", "pygments", "click"}
        == set()
    )
    assert not server_modules(modules)


def test_plain_table_path_imports_no_rich() -> None:
    env = {"ENVPOOLS_API_KEY": "ep_test", "ENVPOOLS_API_URL": "http://127.0.0.1:9"}
    modules = modules_after("pools", "list", env=env)
    assert "rich" not in tops(modules)
    assert not server_modules(modules)


def test_kept_help_costs_about_an_interpreter_start() -> None:
    for args in (["--help"], ["rollouts", "--help"]):
        command = [sys.executable, "-m", "envpools_cli", *args]
        subprocess.run(command, capture_output=True, check=True)  # renders and keeps it
        ratio, seconds, base = fastest_ratio(command, [sys.executable, "-c", "pass"])
        # Measured ~1.1x with farm-bench; through Typer it was 7x (--help) and 12x
        # (rollouts --help).
        assert ratio < 3, f"{args}: {seconds:.3f}s vs python {base:.3f}s"


def test_version_costs_about_an_interpreter_start() -> None:
    command = [sys.executable, "-m", "envpools_cli", "--version"]
    ratio, seconds, base = fastest_ratio(command, [sys.executable, "-c", "pass"])
    # Measured side by side in one run: ~1.1x here. A regression that pulls the app,
    # Typer or the client into --version costs 5x or more.
    assert ratio < 3.5, f"--version {seconds:.3f}s vs python {base:.3f}s"
