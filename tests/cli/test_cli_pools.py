"""envpools pools / tasks against the real local backend."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .conftest import CLI, EXAMPLE, Local


def test_empty_list_is_quiet_on_stdout(cli: CLI, backend: Local) -> None:
    result = cli("pools", "list")
    assert result.code == 0
    assert result.out == ""
    assert "No pools" in result.err
    assert cli("pools", "list", "-o", "json").json() == []


def test_create_get_update_metrics_delete(cli: CLI, backend: Local) -> None:
    created = cli(
        "pools",
        "create",
        "web",
        "--concurrency",
        "2",
        "--tag",
        "py",
        "--tag",
        "gpu",
        "--max-queue",
        "10",
        "--local",
        str(EXAMPLE),
        "-o",
        "json",
    )
    assert created.code == 0, created.err
    pool = created.json()
    assert pool["pool_id"] == "web" and pool["concurrency"] == 2
    assert pool["tags"] == ["py", "gpu"] and pool["max_queue"] == 10
    assert [t["task_id"] for t in pool["tasks"]] == ["fix-failing-test"]

    assert cli("pools", "list", "-q").out == "web\n"
    table = cli("pools", "list")
    header, row = table.lines()
    assert header.split("\t") == [
        "POOL",
        "TYPE",
        "BACKEND",
        "CONCURRENCY",
        "TAGS",
        "TASKS",
        "CREATED_AT",
    ]
    assert row.split("\t")[:6] == ["web", "sandbox", "-", "2", "py,gpu", "1"]
    assert "\x1b" not in table.out, "no colour when stdout is not a terminal"

    as_yaml = yaml.safe_load(cli("pools", "get", "web", "-o", "yaml").out)
    assert as_yaml["pool_id"] == "web"
    jsonl = cli("pools", "list", "-o", "jsonl").lines()
    assert [json.loads(line)["pool_id"] for line in jsonl] == ["web"]
    assert cli("pools", "get", "web", "--fields", "pool_id,concurrency", "--json").json() == {
        "pool_id": "web",
        "concurrency": 2,
    }

    updated = cli("pools", "update", "web", "--concurrency", "5", "--json")
    assert updated.code == 0 and updated.json()["concurrency"] == 5
    metrics = cli("pools", "metrics", "web", "--json").json()
    assert metrics["queue_depth"] == 0 and metrics["concurrency"] == 5

    refused = cli("pools", "delete", "web")
    assert refused.code == 2 and "--yes" in refused.err
    assert cli("pools", "delete", "web", "--yes").code == 0
    gone = cli("pools", "get", "web")
    assert gone.code == 6
    assert "not found" in gone.err


def test_unknown_field_lists_the_available_ones(cli: CLI, backend: Local) -> None:
    cli("pools", "create", "p")
    result = cli("pools", "get", "p", "--fields", "pool_id,nope", "-o", "json")
    assert result.code == 2
    assert result.out == ""
    error = json.loads(result.err)["error"]
    assert "nope" in error["message"] and "pool_type" in error["message"]


def test_create_from_file_and_stdin(cli: CLI, backend: Local, tmp_path: Path) -> None:
    spec = tmp_path / "pool.yaml"
    spec.write_text(
        "pool_id: from-yaml\npool_type: sandbox\nconcurrency: 3\n"
        f"tasks:\n  - task_id: t1\n    backend: harbor\n"
        f"    data_source: {{type: local, path: {EXAMPLE}}}\n"
    )
    result = cli("pools", "create", "--from-file", str(spec), "--json")
    assert result.code == 0, result.err
    assert result.json()["concurrency"] == 3
    body = json.dumps({"pool_id": "from-stdin", "pool_type": "sandbox", "tags": ["x"]})
    result = cli("pools", "create", "--from-file", "-", "--concurrency", "1", "-q", stdin=body)
    assert result.code == 0 and result.out == "from-stdin\n"
    assert cli("pools", "get", "from-stdin", "--json").json()["concurrency"] == 1


def test_bad_input_is_a_usage_error(cli: CLI, backend: Local, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not: json: [")
    for args in (
        ("pools", "create"),
        ("pools", "create", "--from-file", str(bad)),
        ("pools", "create", "--from-file", str(tmp_path / "missing.json")),
        ("pools", "create", "p", "--template", "NOPE"),
        ("pools", "list", "-o", "xml"),
        ("pools", "update", "p"),
        ("pools", "create", "p", "--concurrency", "minus"),
    ):
        result = cli(*args)
        assert result.code == 2, (args, result)
        assert "Traceback" not in result.err
    server_side = cli("pools", "create", "p", "--local", str(tmp_path))
    assert server_side.code == 2, "not a Harbor task: caught before any request"


def test_tasks_commands(cli: CLI, backend: Local, tmp_path: Path) -> None:
    cli("pools", "create", "mixed")
    for args in (
        ("tasks", "create", "mixed", "--local", str(EXAMPLE)),
        (
            "tasks",
            "create",
            "mixed",
            "img",
            "--docker",
            "python:3.12",
            "--env",
            "A=1",
            "--cpus",
            "2",
        ),
        ("pools", "tasks", "create", "mixed", "env", "--openenv", "http://127.0.0.1:9/"),
        ("tasks", "create", "mixed", "web", "--browser", "http://app", "--profile", "p1"),
    ):
        result = cli(*args, "-o", "json")
        assert result.code == 0, (args, result.err)
    listed = cli("tasks", "list", "mixed", "--json").json()
    by_id = {t["task_id"]: t for t in listed}
    assert by_id["img"]["env_vars"] == {"A": "1"} and by_id["img"]["resources"] == {"cpus": 2}
    assert by_id["env"]["backend"] == "openenv"
    assert by_id["web"]["browser"] == {"task_app_url": "http://app", "profile": "p1"}
    table = cli("pools", "tasks", "list", "mixed").out
    assert "docker:python:3.12" in table and str(EXAMPLE) in table
    assert cli("tasks", "update", "mixed", "img", "--docker", "python:3.13").code == 0
    assert cli("tasks", "list", "mixed", "--json").json()[1]["docker_image"] == "python:3.13"
    assert cli("tasks", "delete", "mixed", "img", "--yes").code == 0
    assert len(cli("tasks", "list", "mixed", "-q").lines()) == 3
    both = cli("tasks", "create", "mixed", "x", "--docker", "a", "--openenv", "http://b")
    assert both.code == 2 and "choose one task source" in both.err
    spec = tmp_path / "task.json"
    spec.write_text(json.dumps({"task_id": "ff", "backend": "harbor", "docker_image": "i"}))
    assert cli("tasks", "create", "mixed", "--from-file", str(spec), "-q").out == "ff\n"
