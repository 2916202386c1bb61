"""`tasks update` does what its help says: the new definition replaces the old one."""

from __future__ import annotations

from .conftest import CLI, EXAMPLE, Local


def test_update_replaces_the_definition(cli: CLI, backend: Local) -> None:
    assert "Replace a task's definition" in cli("tasks", "update", "--help").out
    cli("pools", "create", "p")
    created = cli("tasks", "create", "p", "img", "--docker", "a:1", "--env", "A=1", "--cpus", "2")
    assert created.code == 0, created.err
    updated = cli("tasks", "update", "p", "img", "--local", str(EXAMPLE), "-o", "json")
    assert updated.code == 0, updated.err
    task = cli("tasks", "list", "p", "--json").json()[0]
    assert task == updated.json()
    assert task["data_source"]["path"] == str(EXAMPLE)
    assert "docker_image" not in task and "env_vars" not in task and "resources" not in task
    again = cli("tasks", "update", "p", "img", "--docker", "a:2", "--env", "B=2", "-o", "json")
    assert again.json()["env_vars"] == {"B": "2"} and "data_source" not in again.json()
