"""Every -o json / -o jsonl / -o yaml output parses, and agent text reaches nobody raw."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.integration.conftest import make_task

from .conftest import CLI, EXAMPLE, Local


@pytest.fixture
def finished(cli: CLI, backend: Local, tmp_path: object) -> str:
    assert cli("pools", "create", "coding", "--local", str(EXAMPLE), "--tag", "t").code == 0
    cli("credentials", "store", "GH", "--type", "GITHUB_PAT", stdin="ghp_x")
    rid = cli(
        "rollouts",
        "create",
        "--agent",
        "oracle",
        "--task",
        "d/fix-failing-test",
        "--pool",
        "coding",
        "--wait",
        "-q",
    ).out.strip()
    assert rid.startswith("ro_")
    return rid


READS = [
    ("pools", "list"),
    ("pools", "get", "coding"),
    ("pools", "metrics", "coding"),
    ("tasks", "list", "coding"),
    ("pools", "tasks", "list", "coding"),
    ("rollouts", "list"),
    ("rollouts", "get", "{rid}"),
    ("rollouts", "summary", "{rid}"),
    ("rollouts", "usage", "{rid}"),
    ("rollouts", "artifacts", "{rid}"),
    ("rollouts", "tail", "{rid}"),
    ("rollouts", "wait", "{rid}"),
    ("credentials", "list"),
    ("capabilities", "get"),
    ("capabilities", "openapi"),
    ("capabilities", "schema"),
    ("queue", "status"),
    ("auth", "status"),
    ("config", "path"),
    ("config", "profiles"),
]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "yaml"])
def test_every_machine_output_parses(cli: CLI, finished: str, fmt: str) -> None:
    for command in READS:
        args = [part.replace("{rid}", finished) for part in command]
        result = cli(*args, "-o", fmt)
        if command[1] == "tail" and fmt == "yaml":
            # An event stream is a live view, JSON or JSON lines; YAML is refused up front.
            assert result.code == 2 and "json or jsonl" in result.err, result.err
            continue
        assert result.code == 0, (args, result.err)
        assert result.out.strip(), args
        if fmt == "json":
            json.loads(result.out)
        elif fmt == "jsonl":
            for line in result.out.splitlines():
                assert isinstance(json.loads(line), dict | list), args
        else:
            yaml.safe_load(result.out)


def test_hostile_agent_output_is_defused(cli: CLI, backend: Local, tmp_path: object) -> None:
    hostile = (
        r"printf 'A\033]8;;https://evil.example\007link\033]8;;\007 "
        r"\033[2J\033[31mred [bold]markup[/bold] \033]0;title\007done\n'"
    )
    task = make_task(tmp_path, "hostile", solve=hostile)  # type: ignore[arg-type]
    cli("pools", "create", "h", "--local", str(task))
    rid = cli(
        "rollouts",
        "create",
        "--agent",
        "oracle",
        "--task",
        "d/hostile",
        "--pool",
        "h",
        "--wait",
        "-q",
    ).out.strip()
    plain = cli("rollouts", "tail", rid)
    assert "\x1b" not in plain.out and "\x07" not in plain.out
    line = next(x for x in plain.lines() if "markup" in x)
    assert line.endswith("Alink red [bold]markup[/bold] done")
    raw = cli("rollouts", "tail", rid, "-o", "jsonl")
    texts = [json.loads(x)["data"].get("text", "") for x in raw.lines()]
    assert any("\x1b]8;;" in t for t in texts), "JSON keeps the data as it was, escaped"
    assert "\x1b" not in raw.out, "JSON escapes control characters"
