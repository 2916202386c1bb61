"""SIGKILL the backend (``envpools local serve`` in its own process, a real data dir) and
start it again: every rollout ends, and no stored event is lost, repeated or moved."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from envpools_cli import client as ep
from tests.integration.conftest import fast_session, make_task

from .conftest import ServeProcess, assert_exact_sequence, rollout_request, stored_events
from .proxy import FaultProxy

SLOW = "echo 'slow 1'; echo 'slow 2'; echo 'slow 3'; sleep 120"
FAST = "echo 'fast 1'; echo 'fast 2'"


def _pool(server: ServeProcess, tmp_path: Path, concurrency: int, **solutions: str) -> None:
    tasks = [
        ep.PoolTask.from_local(name, str(make_task(tmp_path, name, solve=solve))).model_dump()
        for name, solve in solutions.items()
    ]
    body = {"pool_id": "p", "pool_type": "sandbox", "concurrency": concurrency, "tasks": tasks}
    ep.create_pool(request=body, **server.conn)


def _create(server: ServeProcess, task_id: str) -> str:
    return str(
        ep.create_rollout(request=rollout_request("p", task_id), **server.conn)["rollout_id"]
    )


def _events_so_far(server: ServeProcess, rollout_id: str) -> list[dict[str, Any]]:
    count = ep.get_rollout_summary(rollout_id, **server.conn)["event_count"]
    return list(ep.stream_rollout_events(rollout_id, limit=count, **server.conn))


def _until(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _agent_lines(server: ServeProcess, rollout_id: str) -> int:
    return sum(1 for e in _events_so_far(server, rollout_id) if e["event"] == "agent")


def _wait_terminal(server: ServeProcess, rollout_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = ep.get_rollout(rollout_id, **server.conn)
        if doc["status"] in ep.TERMINAL_STATUSES:
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"{rollout_id} is still {doc['status']} after the restart")
        time.sleep(0.1)


def _assert_history(events: list[dict[str, Any]], doc: dict[str, Any]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "seq not contiguous"
    last = events[-1]
    assert last["event"] == "lifecycle" and last["data"]["status"] == doc["status"]
    terminal = [
        e
        for e in events
        if e["event"] == "lifecycle" and e["data"].get("status") in ep.TERMINAL_STATUSES
    ]
    assert terminal == [last], "exactly one terminal event, the last one"


def test_sigkill_with_ten_rollouts_queued_and_running(
    serve_process: ServeProcess, tmp_path: Path
) -> None:
    server = serve_process.start()
    _pool(server, tmp_path, concurrency=2, slow=SLOW, fast=FAST)
    running = [_create(server, "slow") for _ in range(2)]
    queued = [_create(server, "fast") for _ in range(8)]
    for rollout_id in running:
        _until(f"{rollout_id} to run", lambda r=rollout_id: _agent_lines(server, r) == 3)
    assert {ep.get_rollout(r, **server.conn)["status"] for r in queued} == {"queued"}
    before = {r: _events_so_far(server, r) for r in running + queued}

    server.kill()
    server.start()

    for rollout_id in running:
        doc = _wait_terminal(server, rollout_id)
        assert doc["status"] == "error"
        assert doc["error"]["code"] == "backend_restarted"
        assert doc["finished_at"]
    for rollout_id in queued:
        doc = _wait_terminal(server, rollout_id)
        assert doc["status"] == "succeeded", doc.get("error")
        assert doc["reward_primary"] == 1.0
    for rollout_id, earlier in before.items():
        events = stored_events(server.conn, rollout_id)
        assert events[: len(earlier)] == earlier, f"{rollout_id}: history changed by the kill"
        _assert_history(events, ep.get_rollout(rollout_id, **server.conn))
    for rollout_id in running:
        last = stored_events(server.conn, rollout_id)[-1]["data"]
        assert last["previous"] == "running" and last["error"]["code"] == "backend_restarted"
    for rollout_id in queued:
        texts = [
            e["data"]["text"]
            for e in stored_events(server.conn, rollout_id)
            if e["event"] == "agent"
        ]
        assert texts == ["fast 1", "fast 2"]


def test_a_stream_through_the_proxy_survives_two_sigkills(
    serve_process: ServeProcess, tmp_path: Path
) -> None:
    """One client stream, read through the fault proxy, spans two SIGKILLs and restarts.

    The watched rollout waits in the queue behind a blocker at the first kill, runs after
    the restart, and is running (half its output sent) at the second kill."""
    server = serve_process.start()
    talker = 'for i in $(seq 1 50); do echo "talk $i"; done; sleep 120'
    _pool(server, tmp_path, concurrency=1, blocker=SLOW, talker=talker)
    blocker = _create(server, "blocker")
    watched = _create(server, "talker")
    _until("the blocker to run", lambda: _agent_lines(server, blocker) == 3)

    got: list[dict[str, Any]] = []
    failure: list[BaseException] = []
    with FaultProxy(server.url) as proxy:
        stream = ep.stream_rollout_events(
            watched,
            backend_base=proxy.url,
            api_key=server.key,
            auto_reconnect=True,
            max_retries=1000,  # ~50 ms apart: the restart takes a few seconds
            session=fast_session(),
        )

        def read() -> None:
            try:
                got.extend(stream)
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        _until("the stream to show the queued rollout", lambda: len(got) >= 1)

        server.kill()  # 1: the blocker is running, the watched rollout queued
        server.start()
        _until("the watched rollout to talk", lambda: sum(e["event"] == "agent" for e in got) >= 50)
        server.kill()  # 2: the watched rollout is running
        server.start()
        reader.join(120)
        assert not reader.is_alive(), "the stream did not end"
    assert not failure, failure
    # The stream went through the proxy, which answered 502 while the backend was down.
    assert sum(r.note == "upstream unreachable" for r in proxy.records) >= 2
    assert stream.reconnects >= 2

    doc = ep.get_rollout(watched, **server.conn)
    assert doc["status"] == "error" and doc["error"]["code"] == "backend_restarted"
    stored = stored_events(server.conn, watched)
    assert_exact_sequence(got, stored)
    _assert_history(stored, doc)
    statuses = [
        e["data"]["status"] for e in got if e["event"] == "lifecycle" and "previous" in e["data"]
    ]
    assert statuses == ["starting", "running", "error"]
    assert ep.get_rollout(blocker, **server.conn)["error"]["code"] == "backend_restarted"
