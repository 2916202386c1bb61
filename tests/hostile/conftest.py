"""Hostile tasks: each one attacks the local backend the way a malicious Harbor task could.

Every test runs a real backend (uvicorn on a loopback port 0, SQLite, a real sandbox) and
a task written to break out, then asserts containment and a terminal status. Each test
runs twice: with the bubblewrap sandbox and with the container driver (the task's own
image under podman or Docker). The suite runs as root, as CI does;
``test_unprivileged_backend.py`` runs it again as an unprivileged user where the machine
allows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from tests.helpers.containers import containers_of, driver_settings
from tests.integration.conftest import (
    Backend,
    fast_session,
    local_task,
    make_task,
    needs_bwrap,
    start_backend,
)

__all__ = ["Backend", "Run", "hostile_run", "local_task", "make_task", "needs_bwrap"]

AS_ROOT = os.geteuid() == 0


DRIVERS = os.environ.get("ENVPOOLS_HOSTILE_DRIVERS", "bwrap,container").split(",")


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sandbox driver the backends of this test use."""
    name: str = request.param
    driver_settings(name, monkeypatch)
    return name


@pytest.fixture
def backend_factory(tmp_path: Path, driver: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start a backend with chosen settings (and environment), stopped after the test."""
    started: list[Backend] = []

    def start(**settings: Any) -> Backend:
        data_dir = tmp_path / f"backend{len(started)}"
        settings = {**driver_settings(driver, monkeypatch), **settings}
        thread = start_backend(data_dir, **settings)
        org, key = thread.create_key("pro", name="hostile")
        backend = Backend(thread, key, org.org_id, fast_session(), data_dir)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.session.close()
        backend.thread.stop()
    if driver == "container":
        left = {str(b.data_dir): containers_of(b.data_dir) for b in started}
        assert not any(left.values()), f"containers left behind: {left}"


@pytest.fixture
def backend(backend_factory: Any) -> Backend:
    backend: Backend = backend_factory()
    return backend


@dataclass
class Run:
    rollout_id: str
    doc: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def texts(self) -> list[str]:
        return [
            str(e["data"].get("text", ""))
            for e in self.events
            if e["event"] in ("agent", "verifier")
        ]

    def values(self) -> dict[str, str]:
        """``key=value`` lines the hostile task printed."""
        found = {}
        for text in self.texts:
            key, sep, value = text.partition("=")
            if sep and key.isidentifier():
                found[key] = value
        return found

    def everything(self) -> str:
        """The rollout and every event as one text, to search for what must not be there."""
        return json.dumps([self.doc, self.events])


def hostile_run(
    backend: Backend,
    task: Path,
    *,
    harness: str = "oracle",
    timeout: float = 90,
    **request: Any,
) -> Run:
    """Run ``task`` in a pool of its own; wait (bounded) for a terminal status."""
    pool = f"p{time.monotonic_ns()}"
    backend.pool(pool, local_task(task.name, task))
    rollout_id = backend.rollout(pool, task.name, harness=harness, **request)["rollout_id"]
    doc = backend.wait(rollout_id, timeout=timeout)
    events = list(ep.stream_rollout_events(rollout_id, **backend.conn))
    return Run(rollout_id, doc, events)
