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
    modules = modules_after("--help")
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


# What every fast answer imports: the entry point, the fast paths' dispatch and the values
# they share with the full CLI. Typer, Click, Rich, pydantic, the app or a command module
# coming back would put --help at 5-15x an interpreter start again.
FAST = {"envpools_cli", "envpools_cli.fast", "envpools_cli.shared", "runpy"}


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("rollouts", "--help"), ("jobs", "-h")])
def test_help_imports_only_the_generated_screens(args: tuple[str, ...]) -> None:
    found = imported(*args) - FAST
    assert found == {"envpools_cli.fast.help", "envpools_cli.fast.screens"}


def test_a_tab_press_imports_only_the_engine() -> None:
    env = {"_ENVPOOLS_COMPLETE": "bash"}
    found = imported("2", "envpools", "rollouts", "", env=env) - FAST
    assert found == {
        "envpools_cli.completion",
        "envpools_cli.completion.cache",
        "envpools_cli.completion.engine",
        "envpools_cli.completion.scripts",
        "envpools_cli.completion.spec",
        "envpools_cli.completion.tree",
        "envpools_cli.completion.values",
        "envpools_cli.paths",
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


def command_modules(modules: set[str]) -> set[str]:
    """The command modules (not the ``_`` helpers) among ``modules``."""
    found = {m for m in modules if m.startswith("envpools_cli.commands.")}
    return {m.rsplit(".", 1)[1] for m in found if not m.rsplit(".", 1)[1].startswith("_")}


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        (("pools", "list"), {"pools"}),
        (("pools", "tasks", "list", "p1"), {"pools", "tasks"}),
        (("rollouts", "list"), {"rollouts"}),
        (("rollouts", "wait", "ro_1", "--timeout", "0"), {"rollouts", "rollouts_watch"}),
        (("local", "images", "list"), {"local", "local_images"}),
    ],
)
def test_a_command_imports_only_its_own_group(args: tuple[str, ...], loaded: set[str]) -> None:
    """Command groups are built lazily (app.COMMANDS): a command line pays for its own."""
    env = {"ENVPOOLS_API_KEY": "ep_test", "ENVPOOLS_API_URL": "http://127.0.0.1:9"}
    assert command_modules(modules_after(*args, env=env)) == loaded


def test_a_misspelled_command_is_still_suggested() -> None:
    """Click suggests among the commands it built: the lazy group offers all of them."""
    for argv, expected in ((["rollout", "list"], "'rollouts'"), (["pools", "lst"], "'list'")):
        done = subprocess.run(
            [sys.executable, "-m", "envpools_cli", *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2
        assert f"Did you mean {expected}?" in done.stderr


def test_help_costs_about_an_interpreter_start() -> None:
    for args in (["--help"], ["rollouts", "--help"]):
        command = [sys.executable, "-m", "envpools_cli", *args]
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
