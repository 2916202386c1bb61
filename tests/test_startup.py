"""Start-up is a feature: each fast path imports only what it uses (DESIGN.md, budgets)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import pytest

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


def _median_seconds(command: list[str], runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_version_costs_about_an_interpreter_start() -> None:
    baseline = _median_seconds([sys.executable, "-c", "pass"])
    version = _median_seconds([sys.executable, "-m", "envpools_cli", "--version"])
    # Measured side by side in one run: ~1.1x here. A regression that pulls the app,
    # Typer or the client into --version costs 5x or more.
    assert version < baseline * 3.5, f"--version {version:.3f}s vs python {baseline:.3f}s"
