"""Finding 5 (LOW): the task's environment reached the container engine's own client.

``ENV CONTAINER_HOST=...`` in a Dockerfile, or in a pool task's ``env_vars``, switched
the backend's podman client into remote mode (only names on a deny-list were kept from
it). The client's environment now comes from an allow-list of the backend's own; the
task's variables reach the container only as the container's (an env file), so the
rollout runs normally and the task sees its values as written, odd ones included.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from envpools_cli import client as ep

from .conftest import Backend, hostile_run, make_task

PEM = "-----BEGIN KEY-----\nline 'two' \"$HOME\" `x` \\n\n-----END KEY-----\n"
STEERING = {
    "CONTAINER_HOST": "unix:///nonexistent/envpools-steer.sock",
    "CONTAINER_CONNECTION": "elsewhere",
    "CONTAINERS_CONF": "/nonexistent/containers.conf",
    "DOCKER_HOST": "tcp://127.0.0.1:9",
}


def test_engine_variables_from_the_task_do_not_steer_the_engine(
    backend: Backend, tmp_path: Path
) -> None:
    task = make_task(
        tmp_path,
        "steer-engine",
        dockerfile=(
            "FROM python:3.12-slim\n"
            "ENV CONTAINER_HOST=tcp://127.0.0.1:1 BUILDAH_ISOLATION=chroot\n"
            "WORKDIR /app\nCOPY repo/ /app/\n"
        ),
        solve="""
        echo "container_host=$CONTAINER_HOST"
        echo "docker_host=$DOCKER_HOST"
        printf '%s' "$PEM" | sha256sum | cut -c1-64 | sed 's/^/pem=/'
        echo "spaced=[$SPACED]"
        """,
    )
    pool = "steer"
    env_vars = {**STEERING, "PEM": PEM, "SPACED": "  two  words  "}
    backend.pool(pool, ep.PoolTaskInstance(**{**_task(task), "env_vars": env_vars}))
    rollout_id = backend.rollout(pool, task.name)["rollout_id"]
    doc = backend.wait(rollout_id, timeout=180)
    events = list(ep.stream_rollout_events(rollout_id, **backend.conn))
    assert doc["status"] == "succeeded", (doc.get("error"), events[-5:])
    found = {}
    for event in events:
        key, sep, value = str(event["data"].get("text", "")).partition("=")
        if sep and key.isidentifier():
            found[key] = value
    assert found["container_host"] == STEERING["CONTAINER_HOST"], "the task sees its own value"
    assert found["docker_host"] == STEERING["DOCKER_HOST"]
    assert found["pem"] == hashlib.sha256(PEM.encode()).hexdigest(), "a multi-line value"
    assert found["spaced"] == "[  two  words  ]"


def test_the_dockerfile_alone_does_not_steer_the_engine(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "steer-dockerfile",
        dockerfile=(
            "FROM python:3.12-slim\nENV CONTAINER_HOST=unix:///nonexistent/podman.sock\n"
            "WORKDIR /app\nCOPY repo/ /app/\n"
        ),
        solve='echo "container_host=$CONTAINER_HOST"',
    )
    run = hostile_run(backend, task, timeout=180)
    assert run.doc["status"] == "succeeded", run.doc.get("error")
    assert run.values()["container_host"] == "unix:///nonexistent/podman.sock"


def _task(path: Path) -> dict[str, object]:
    return ep.PoolTask.from_local(path.name, str(path)).model_dump()
