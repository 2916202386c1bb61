"""The event stream of the real backend: resume after drops and restarts, many tailers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.client.sse import SSEDecoder
from envpools_cli.server.serve import BackendThread

from .conftest import Backend, fast_session, local_task, make_task, start_backend

CHATTY = """
for i in $(seq 1 200); do echo "line $i"; done
sleep 1.5
for i in $(seq 201 400); do echo "line $i"; done
"""


class DroppingProxy:
    """Forwards TCP to the backend and cuts the first ``drops`` responses after some bytes."""

    def __init__(self, target_port: int, drops: int, cut_after: int = 3000) -> None:
        self.target_port = target_port
        self.drops = drops
        self.cut_after = cut_after
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            cut = self.connections <= self.drops
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    def _serve(self, client: socket.socket, cut: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def pump_up() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=pump_up, daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(1024):
                if cut and sent + len(data) > self.cut_after:
                    client.sendall(data[: self.cut_after - sent])
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            # shutdown() first: close() alone does not wake the thread blocked in recv(),
            # and the kernel keeps the connection open while that read is pending.
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.listener.close()


def assert_complete(events: list[dict[str, object]]) -> None:
    events = [e for e in events if e["event"] != "heartbeat"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order"
    last = events[-1]
    assert last["event"] == "lifecycle"


def test_resume_after_dropped_connections(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "chatty", solve=CHATTY)
    backend.pool("p", local_task("chatty", task))
    rid = backend.rollout("p", "chatty")["rollout_id"]
    proxy = DroppingProxy(backend.thread.port, drops=3)
    try:
        stream = ep.stream_rollout_events(
            rid,
            backend_base=f"http://127.0.0.1:{proxy.port}",
            api_key=backend.key,
            auto_reconnect=True,
            session=fast_session(),
            max_retries=20,
        )
        events = list(stream)
    finally:
        proxy.close()
    assert_complete(events)
    assert events[-1]["data"]["status"] == "succeeded"  # type: ignore[index]
    lines = [e["data"]["text"] for e in events if e["event"] == "agent"]  # type: ignore[index]
    assert lines == [f"line {i}" for i in range(1, 401)]
    assert stream.reconnects >= 3
    assert proxy.connections >= 4


def test_resume_after_a_server_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_backend(data_dir)
    port = first.port
    _, key = first.create_key()
    task = make_task(tmp_path, "chatty", solve=CHATTY.replace("sleep 1.5", "sleep 30"))
    conn = {"backend_base": first.url, "api_key": key}
    ep.create_pool(
        request={
            "pool_id": "p",
            "pool_type": "sandbox",
            "tasks": [local_task("chatty", task).model_dump()],
        },
        **conn,
    )
    rid = ep.create_rollout(
        request={
            "task_ref": {"dataset": "d", "task_id": "chatty"},
            "agent": {"harness": "oracle"},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {},
        },
        **conn,
    )["rollout_id"]
    stream = ep.stream_rollout_events(
        rid, auto_reconnect=True, max_retries=200, session=fast_session(), **conn
    )
    events = []
    second: BackendThread | None = None
    try:
        for event in stream:
            events.append(event)
            if event["event"] == "agent" and event["data"]["text"] == "line 200":
                first.stop()  # the stream drops and the rollout dies with the backend
                second = start_backend(data_dir, port=port)
    finally:
        if second is None:
            first.stop()
        else:
            second.stop()
    assert_complete(events)
    final = events[-1]["data"]
    assert final["status"] == "error"  # type: ignore[index]
    assert final["error"]["code"] == "backend_restarted"  # type: ignore[index]
    assert stream.reconnects >= 1


def test_a_crashed_backend_recovers_on_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    thread = start_backend(data_dir)
    _, key = thread.create_key()
    conn = {"backend_base": thread.url, "api_key": key}
    task = make_task(tmp_path, "quick")
    ep.create_pool(
        request={
            "pool_id": "p",
            "pool_type": "sandbox",
            "concurrency": 0,
            "tasks": [local_task("quick", task).model_dump()],
        },
        **conn,
    )
    request = {
        "task_ref": {"dataset": "d", "task_id": "quick"},
        "agent": {"harness": "oracle"},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
    }
    queued = ep.create_rollout(request=request, **conn)["rollout_id"]
    running = ep.create_rollout(request=request, **conn)["rollout_id"]
    thread.stop()
    # Simulate a crash in the middle of `running`: the store says it was running.
    from envpools_cli.server.state.store import Store

    store = Store(data_dir / "envpools.db")
    store.update_rollout(running, status="running")
    store.append_event(running, "lifecycle", {"status": "running", "previous": "starting"})
    store.close()

    restarted = start_backend(data_dir, port=0)
    try:
        conn = {"backend_base": restarted.url, "api_key": key}
        crashed = ep.get_rollout(running, **conn)
        assert crashed["status"] == "error"
        assert crashed["error"]["code"] == "backend_restarted"
        events = list(ep.stream_rollout_events(running, **conn))
        assert [e["data"]["status"] for e in events] == ["queued", "running", "error"]
        ep.update_pool("p", request={"concurrency": 1}, **conn)
        done = ep.RolloutHandle(queued, **conn).wait(timeout=30)
        assert done["status"] == "succeeded", "queued rollouts run after a restart"
    finally:
        restarted.stop()


def test_many_tailers_each_get_every_event(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "chatty", solve=CHATTY.replace("1.5", "0.5"))
    backend.pool("p", local_task("chatty", task))
    rid = backend.rollout("p", "chatty")["rollout_id"]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda _: backend.events(rid), range(12)))
    for events in results:
        assert_complete(events)
        assert events == results[0]


def test_heartbeats_without_ids(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "quiet", solve="sleep 2.5")
    backend.pool("p", local_task("quiet", task))
    rid = backend.rollout("p", "quiet")["rollout_id"]
    events = backend.events(rid)
    heartbeats = [e for e in events if e["event"] == "heartbeat"]
    assert heartbeats, "a quiet rollout still shows signs of life (heartbeat_sec=1)"
    assert all(e["id"] is None for e in heartbeats)
    assert_complete(events)


def test_cursor_since_and_limit(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "t", solve="echo a; echo b; echo c")
    backend.pool("p", local_task("t", task))
    rid = backend.rollout("p", "t")["rollout_id"]
    everything = backend.events(rid)
    after = backend.events(rid, cursor="3")
    assert [e["seq"] for e in after] == [e["seq"] for e in everything[3:]]
    assert [e["seq"] for e in backend.events(rid, limit=4)] == [1, 2, 3, 4]
    middle = everything[len(everything) // 2]
    since = backend.events(rid, since=middle["timestamp"])
    assert all(e["timestamp"] > middle["timestamp"] for e in since)
    assert since[-1]["data"]["status"] == "succeeded"
    # Last-Event-ID alone resumes too, exclusively.
    response = httpx.get(
        f"{backend.url}/v1/rollouts/{rid}/events",
        headers={
            "Authorization": f"Bearer {backend.key}",
            "Last-Event-ID": str(len(everything) - 1),
        },
    )
    decoded = list(SSEDecoder().feed(response.content))
    assert [e.id for e in decoded] == [str(len(everything))]
    assert response.headers["content-type"].startswith("text/event-stream")


def test_live_events_arrive_while_running(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "live", solve="echo first; sleep 2; echo second")
    backend.pool("p", local_task("live", task))
    rid = backend.rollout("p", "live")["rollout_id"]
    seen: dict[str, float] = {}
    for event in ep.stream_rollout_events(rid, **backend.conn):
        if event["event"] == "agent":
            seen[event["data"]["text"]] = time.monotonic()
    assert seen["second"] - seen["first"] >= 1.5, "first arrived before second was printed"


def test_bad_cursor_is_rejected(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "t")
    backend.pool("p", local_task("t", task))
    rid = backend.rollout("p", "t")["rollout_id"]
    with pytest.raises(ep.ValidationError):
        list(ep.stream_rollout_events(rid, cursor="abc", **backend.conn))
