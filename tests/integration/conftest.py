"""A real local backend on a real socket (port 0), driven by the project's own client."""

from __future__ import annotations

import contextlib
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.services.placement import examples_dir
from envpools_cli.server.settings import ServerSettings

EXAMPLE = examples_dir() / "fix-failing-test"
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


def fast_session() -> ep.HTTPSession:
    """Real network, but backoff sleeps shortened so reconnect tests stay quick."""
    return ep.HTTPSession(sleep=lambda seconds: time.sleep(min(seconds, 0.05)))


@dataclass
class Backend:
    thread: BackendThread
    key: str
    org_id: str
    session: ep.HTTPSession
    data_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def conn(self) -> dict[str, Any]:
        return {"backend_base": self.url, "api_key": self.key, "session": self.session}

    def as_org(self, key: str) -> dict[str, Any]:
        return {"backend_base": self.url, "api_key": key, "session": self.session}

    def new_key(self, plan: str = "pro") -> str:
        return self.thread.create_key(plan)[1]

    def pool(
        self, pool_id: str = "p", *tasks: ep.PoolTaskInstance, **fields: Any
    ) -> dict[str, Any]:
        body = {
            "pool_id": pool_id,
            "pool_type": "sandbox",
            **fields,
            "tasks": [t.model_dump() for t in tasks],
        }
        return ep.create_pool(request=body, **self.conn)

    def rollout(
        self, pool_id: str, task_id: str, harness: str = "oracle", **extra: Any
    ) -> dict[str, Any]:
        request = {
            "task_ref": {"dataset": "tests", "task_id": task_id},
            "agent": {"harness": harness},
            "pool_id": pool_id,
            "task_app_id": "",
            "timeouts": {},
            **extra,
        }
        return ep.create_rollout(request=request, **self.conn)

    def wait(self, rollout_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        wanted = set(statuses) or set(ep.TERMINAL_STATUSES)
        deadline = time.monotonic() + timeout
        while True:
            doc = ep.get_rollout(rollout_id, **self.conn)
            if doc["status"] in wanted:
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"{rollout_id} stayed {doc['status']}, wanted {wanted}")
            time.sleep(0.05)

    def events(self, rollout_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        return list(
            ep.stream_rollout_events(rollout_id, auto_reconnect=True, **kwargs, **self.conn)
        )


def start_backend(data_dir: Path, port: int = 0, **settings: Any) -> BackendThread:
    options = {"heartbeat_sec": 1.0, **settings}
    return BackendThread(ServerSettings(data_dir=data_dir, **options), port=port).start()


@contextlib.contextmanager
def backends(tmp_path: Path, name: str, **defaults: Any) -> Iterator[Callable[..., Backend]]:
    """Backends started on demand, each in a data folder of its own (or the one given) with a
    "pro" key named ``name``, ``defaults`` under the settings each start names; all are
    stopped at the end."""
    started: list[Backend] = []

    def run(data_dir: Path | None = None, **settings: Any) -> Backend:
        folder = data_dir or tmp_path / f"backend{len(started)}"
        thread = start_backend(folder, **{**defaults, **settings})
        org, key = thread.create_key("pro", name=name)
        backend = Backend(thread, key, org.org_id, fast_session(), folder)
        started.append(backend)
        return backend

    try:
        yield run
    finally:
        for backend in started:
            backend.session.close()
            backend.thread.stop()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    data_dir = tmp_path / "backend"
    thread = start_backend(data_dir)
    org, key = thread.create_key("pro", name="main")
    session = fast_session()
    yield Backend(thread, key, org.org_id, session, data_dir)
    session.close()
    thread.stop()


def make_task(
    root: Path,
    name: str,
    *,
    solve: str = "echo solved",
    test: str = "echo 1 > /logs/verifier/reward.txt",
    files: dict[str, str] | None = None,
    dockerfile: str | None = "FROM python:3.12-slim\nWORKDIR /app\nCOPY repo/ /app/\n",
    toml: str = "",
) -> Path:
    """A Harbor-format task directory with the given solve.sh and test.sh bodies."""
    task = root / name
    (task / "environment" / "repo").mkdir(parents=True)
    (task / "solution").mkdir()
    (task / "tests").mkdir()
    (task / "instruction.md").write_text(f"Task {name}.\n")
    (task / "task.toml").write_text('version = "1.0"\n' + toml)
    if dockerfile is not None:
        (task / "environment" / "Dockerfile").write_text(dockerfile)
    for relative, content in (files or {"README.md": "hello\n"}).items():
        target = task / "environment" / "repo" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\n" + textwrap.dedent(solve) + "\n")
    (task / "tests" / "test.sh").write_text("#!/bin/bash\n" + textwrap.dedent(test) + "\n")
    return task


def local_task(task_id: str, path: Path) -> ep.PoolTaskInstance:
    return ep.PoolTask.from_local(task_id, str(path))
