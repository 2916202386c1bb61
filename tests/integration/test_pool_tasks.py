"""A pool task's definition: its env_vars reach the sandbox, and PUT replaces it whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from envpools_cli import client as ep

from .conftest import Backend, make_task

REPORT = """
for name in GREETING LITERAL OVERRIDDEN PHASE_WINS; do echo "$PHASE $name=${!name}"; done
"""


def _task(tmp_path: Path) -> Path:
    return make_task(
        tmp_path,
        "env",
        dockerfile='FROM python:3.12-slim\nWORKDIR /app\nENV OVERRIDDEN="from the Dockerfile"\n'
        "COPY repo/ /app/\n",
        toml='[verifier.env]\nPHASE_WINS = "from task.toml"\n',
        solve="PHASE=agent\n" + REPORT,
        test="PHASE=verifier\n" + REPORT + "echo 1 > /logs/verifier/reward.txt\n",
    )


def _pool_task(path: Path, env: dict[str, str]) -> dict[str, Any]:
    return ep.PoolTask.from_local("env", str(path), env=env).model_dump()


def _lines(backend: Backend, rollout_id: str) -> set[str]:
    return {
        e["data"]["text"]
        for e in backend.events(rollout_id)
        if e["event"] in ("agent", "verifier") and "=" in e["data"].get("text", "")
    }


def test_env_vars_reach_both_phases_as_written(backend: Backend, tmp_path: Path) -> None:
    env = {
        "GREETING": "hello world",
        "LITERAL": "${HOME} and $PATH",  # passed as written, never expanded
        "OVERRIDDEN": "from the pool",
        "PHASE_WINS": "from the pool",
    }
    ep.create_pool(
        request={
            "pool_id": "p",
            "pool_type": "sandbox",
            "tasks": [_pool_task(_task(tmp_path), env)],
        },
        **backend.conn,
    )
    rollout = backend.rollout("p", "env")
    assert backend.wait(rollout["rollout_id"])["status"] == "succeeded"
    lines = _lines(backend, rollout["rollout_id"])
    for phase in ("agent", "verifier"):
        assert f"{phase} GREETING=hello world" in lines
        assert f"{phase} LITERAL=${{HOME}} and $PATH" in lines
        assert f"{phase} OVERRIDDEN=from the pool" in lines, "pool env wins over ENV"
    assert "agent PHASE_WINS=from the pool" in lines
    assert "verifier PHASE_WINS=from task.toml" in lines, "a phase's own env wins"
    doc = ep.get_rollout(rollout["rollout_id"], **backend.conn)
    assert doc["routing"]["task_source"]["env_var_names"] == sorted(env)
    assert "hello world" not in str(doc["routing"]), "routing shows names, not values"


@pytest.mark.parametrize(
    "env", [{"1ST": "x"}, {"A=B": "x"}, {"": "x"}, {"OK": "nul\x00byte"}, {"OK": 5}]
)
def test_env_vars_that_no_process_could_receive_are_refused(
    backend: Backend, tmp_path: Path, env: dict[str, Any]
) -> None:
    backend.pool("p")
    body = {"task_id": "t", "backend": "harbor", "docker_image": "x", "env_vars": env}
    answer = httpx.post(
        f"{backend.url}/v1/pools/p/tasks",
        json=body,
        headers={"Authorization": f"Bearer {backend.key}"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"].startswith("env_vars")


def test_put_replaces_the_task_definition(backend: Backend, tmp_path: Path) -> None:
    path = _task(tmp_path)
    first = {**_pool_task(path, {"A": "1"}), "resources": {"cpus": 2}, "config": {"x": 1}}
    ep.create_pool(
        request={"pool_id": "p", "pool_type": "sandbox", "tasks": [first]}, **backend.conn
    )
    replaced = ep.update_pool_task(
        "p",
        "env",
        request=ep.PoolTask.from_docker("env", "python:3.13").model_dump(),
        **backend.conn,
    )
    assert replaced["docker_image"] == "python:3.13"
    for gone in ("env_vars", "resources", "config", "data_source"):
        assert gone not in replaced, f"{gone} was kept: PUT merged instead of replacing"
    assert ep.list_pool_tasks("p", **backend.conn) == [replaced]

    headers = {"Authorization": f"Bearer {backend.key}"}
    other = httpx.put(
        f"{backend.url}/v1/pools/p/tasks/env",
        json={"task_id": "renamed", "backend": "harbor"},
        headers=headers,
    )
    assert other.status_code == 409 and "cannot change" in other.json()["error"]["message"]
    missing = httpx.put(
        f"{backend.url}/v1/pools/p/tasks/nope", json={"backend": "harbor"}, headers=headers
    )
    assert missing.status_code == 404
