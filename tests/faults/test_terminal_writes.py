"""No rollout stays active for good: an end the store refuses still reaches the streams and
is stored once the store takes writes again, and a runner that dies still ends its rollout.

Before: the runner marked itself ended, the write of the terminal status raised ("database
or disk is full"), its thread died and no terminal event was ever sent: ``tail`` and
``wait`` hung to their timeout, even after space came back; only a restart cleared it.

The fault is injected at the store: every SQLite connection of the backend is one whose
``COMMIT`` fails with SQLITE_FULL while ``FULL`` is set, exactly what SQLite answers when
the disk fills under a transaction (the transaction is left open, as SQLite may leave it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.server.scheduling import local as local_executor
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.trial.runner import RolloutRunner
from tests.integration.conftest import fast_session, local_task, make_task, start_backend

from .conftest import assert_exact_sequence, rollout_request

FULL = threading.Event()
_connect = sqlite3.connect


class FullDiskConnection(sqlite3.Connection):
    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if FULL.is_set() and sql.strip().upper() == "COMMIT":
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise error
        return super().execute(sql, *args)


@pytest.fixture
def faulty_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return _connect(*args, **kwargs, factory=FullDiskConnection)

    monkeypatch.setattr(sqlite3, "connect", connect)
    FULL.clear()
    yield FULL
    FULL.clear()


@pytest.fixture
def started(
    tmp_path: Path, faulty_store: threading.Event
) -> Iterator[tuple[BackendThread, dict[str, Any]]]:
    thread = start_backend(tmp_path / "backend")  # after the patch: all its connections
    _, key = thread.create_key("pro")
    session = fast_session()
    yield thread, {"backend_base": thread.url, "api_key": key, "session": session}
    FULL.clear()
    session.close()
    thread.stop()


def _stored(db: Path, rollout_id: str) -> tuple[str, list[bytes]]:
    """The status and event frames as the database holds them (a connection of its own)."""
    conn = _connect(db)
    try:
        (doc,) = conn.execute(
            "SELECT status FROM rollouts WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        frames = [
            row[0]
            for row in conn.execute(
                "SELECT frame FROM events WHERE rollout_id = ? ORDER BY seq", (rollout_id,)
            )
        ]
    finally:
        conn.close()
    return str(doc), frames


def _within(seconds: float) -> ep.ReconnectPolicy:
    """Follow for at most ``seconds`` (a stream that never ends must not hang the test)."""
    return ep.ReconnectPolicy.watching(deadline=seconds)


class Tailer(threading.Thread):
    """A live ``stream_rollout_events`` reader, timing each event's arrival."""

    def __init__(self, rollout_id: str, conn: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.rollout_id, self.conn = rollout_id, conn
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in ep.stream_rollout_events(
                self.rollout_id, auto_reconnect=True, reconnect=_within(60), **self.conn
            ):
                if event["event"] != "heartbeat":
                    self.events.append((time.monotonic(), event))
        except BaseException as exc:
            self.error = exc

    def saw(self, text: str) -> bool:
        return any(text in str(event.get("data")) for _, event in self.events)


def test_an_end_the_store_refuses_reaches_live_tailers_and_is_stored_once_it_can_be(
    started: tuple[BackendThread, dict[str, Any]], tmp_path: Path
) -> None:
    thread, conn = started
    task = make_task(tmp_path, "slow", solve="echo started\nsleep 2\n")
    ep.create_pool(
        request={
            "pool_id": "p",
            "pool_type": "sandbox",
            "tasks": [local_task("slow", task).model_dump()],
        },
        **conn,
    )
    rollout_id = ep.create_rollout(request=rollout_request("p", "slow"), **conn)["rollout_id"]
    live = Tailer(rollout_id, conn)
    live.start()
    deadline = time.monotonic() + 60
    while not live.saw("started"):
        assert time.monotonic() < deadline and live.is_alive(), live.error or live.events
        time.sleep(0.05)

    FULL.set()  # the agent is sleeping; every write from now on is refused
    refused_at = time.monotonic()
    live.join(15)
    assert not live.is_alive(), "the live tailer never got a terminal event"
    assert live.error is None, live.error
    arrived, last = live.events[-1]
    assert arrived - refused_at < 10, f"terminal event after {arrived - refused_at:.1f}s"
    assert last["event"] == "lifecycle" and last["data"]["status"] == "error", last
    assert last["data"]["error"]["code"] == "disk_full", last["data"]
    assert "is full" in last["data"]["error"]["message"]

    # The store still says running; every read of the rollout says how it ended.
    db = thread.settings.db_path
    status, frames = _stored(db, rollout_id)
    assert status in ("running", "verifying"), status
    assert len(frames) == last["seq"] - 1
    doc = ep.get_rollout(rollout_id, **conn)
    assert doc["status"] == "error" and doc["error"]["code"] == "disk_full"
    summary = ep.get_rollout_summary(rollout_id, **conn)
    assert summary["last_event"]["seq"] == last["seq"]
    late = list(ep.stream_rollout_events(rollout_id, **conn))  # a tailer that comes now
    assert late[-1] == last

    FULL.clear()  # space is back: the end is written, under the seq the streams saw
    deadline = time.monotonic() + 10
    while (status := _stored(db, rollout_id)[0]) != "error":
        assert time.monotonic() < deadline, f"the store still says {status}"
        time.sleep(0.1)
    stored = list(ep.stream_rollout_events(rollout_id, **conn))
    assert_exact_sequence([event for _, event in live.events], stored)
    assert stored[-1] == last
    assert ep.get_rollout(rollout_id, **conn)["status"] == "error"


@pytest.mark.parametrize("where", ["thread", "start"])
def test_a_rollout_whose_runner_dies_ends_within_seconds(
    started: tuple[BackendThread, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A runner thread that dies without ending its rollout (``thread``), or a rollout that
    was claimed but never got a runner (``start``), is ended ``runner_lost``."""
    _, conn = started
    if where == "thread":

        def die(self: RolloutRunner) -> Any:
            raise SystemExit("a runner thread stopped by something no handler expects")

        monkeypatch.setattr(RolloutRunner, "_execute", die)
    else:

        def vanish(self: RolloutRunner, trial: Any, site: Any, reporter: Any) -> None:
            raise KeyError(trial.rollout_id)

        monkeypatch.setattr(local_executor.RolloutRunner, "__init__", vanish)
    task = make_task(tmp_path, "t")
    ep.create_pool(
        request={
            "pool_id": "p",
            "pool_type": "sandbox",
            "tasks": [local_task("t", task).model_dump()],
        },
        **conn,
    )
    rollout_id = ep.create_rollout(request=rollout_request("p", "t"), **conn)["rollout_id"]
    started_at = time.monotonic()
    events = list(
        ep.stream_rollout_events(rollout_id, auto_reconnect=True, reconnect=_within(20), **conn)
    )
    elapsed = time.monotonic() - started_at
    assert events[-1]["data"]["status"] == "error", events[-1]
    assert events[-1]["data"]["error"]["code"] == "runner_lost", events[-1]
    assert elapsed < 8, f"ended after {elapsed:.1f}s"
    assert ep.get_rollout(rollout_id, **conn)["status"] == "error"
