"""Finding 2 (MEDIUM): the task ran as the backend's uid (root) and read /etc/shadow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import AS_ROOT, Backend, hostile_run, make_task, needs_bwrap

pytestmark = needs_bwrap


def _shadow_lines() -> list[str]:
    try:
        text = Path("/etc/shadow").read_text()
    except OSError:
        return []
    return [line for line in text.splitlines() if len(line) > 8]


def test_root_only_files_are_unreadable(
    backend_factory: object, driver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tool folder shared into every sandbox (ENVPOOLS_TOOL_PATH): world-readable tools
    # must run, a root-only file in the same tree must stay unreadable.
    tools = tmp_path / "tools"
    tools.mkdir()
    tools.chmod(0o755)
    (tools / "hello-tool").write_text("#!/bin/sh\necho tool_ran=yes\n")
    (tools / "hello-tool").chmod(0o755)
    secret = tools / "root-only.txt"
    secret.write_text("root-only-canary-5c1d\n")
    secret.chmod(0o600)
    monkeypatch.setenv("ENVPOOLS_TOOL_PATH", str(tools))
    backend: Backend = backend_factory()  # type: ignore[operator]
    task = make_task(
        tmp_path,
        "read-root-files",
        solve=f"""
        cat /etc/shadow /etc/gshadow 2>&1
        cat {secret} 2>&1
        hello-tool
        echo uid=$(id -u)
        echo shadow_bound=$([ -e /etc/shadow ] && echo yes || echo no)
        echo shadow_readable=$(cat /etc/shadow >/dev/null 2>&1 && echo yes || echo no)
        grep -c . /etc/passwd | sed 's/^/passwd_lines=/'
        """,
    )
    run = hostile_run(backend, task)
    everything = run.everything()

    values = run.values()
    if AS_ROOT:
        assert "root-only-canary-5c1d" not in everything, "a root-only file was read"
        assert values.get("uid") not in ("0", str(os.getuid())), "the task ran as root"
    for line in _shadow_lines():
        assert line not in everything, "a line of the host's /etc/shadow leaked"
    if driver == "bwrap":
        assert values.get("shadow_bound") == "no", "the sandbox's /etc is minimal"
    # In a container /etc is the image's own, its shadow file root's: unreadable too.
    assert values.get("shadow_readable") == "no"
    assert values.get("tool_ran") == "yes", "world-readable tool trees stay usable"
    assert run.doc["status"] == "succeeded"
