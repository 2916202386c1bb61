"""An event stream read through a hundred broken connections loses nothing.

What the client of today holds: a connection cut in the middle of a response (inside the
headers, inside an event, between two events of a chunked body, by FIN or by RST) is a
transport error, and the stream resumes after the last id it delivered.

A *clean* early close (a response that ends properly before the terminal event) is
resumed too, never taken for the end: ``test_a_clean_early_close_is_resumed``.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

from envpools_cli import client as ep
from tests.integration.conftest import Backend, fast_session, local_task

from .conftest import assert_exact_sequence, chatty_task, rollout_request, stored_events
from .proxy import Fault, FaultProxy, randomly

LINES = 20_000
CUTS = 100


def _stream(proxy: FaultProxy, backend: Backend, rollout_id: str, **kwargs: Any) -> ep.EventStream:
    return ep.stream_rollout_events(
        rollout_id,
        backend_base=proxy.url,
        api_key=backend.key,
        auto_reconnect=True,
        session=fast_session(),
        **kwargs,
    )


def test_a_hundred_cuts_lose_duplicate_and_reorder_nothing(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    backend.pool("p", local_task("chatty", chatty_task(tmp_path, "chatty", LINES)))

    def cut(rng: random.Random) -> Fault:
        # From inside the status line to ~30 KB in: headers, mid-event and between events;
        # every other one a RST instead of a FIN.
        return Fault.cut(rng.randint(1, 30_000), reset=rng.random() < 0.5)

    proxy.plan = randomly(1.0, cut, seed=100, method="GET", path=r"/events$", limit=CUTS)
    rollout = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)
    # Read while the rollout runs: cuts land in the live tail and in history replay alike.
    stream = _stream(proxy, backend, rollout["rollout_id"], max_retries=10)
    got = list(stream)

    assert len(proxy.faults("cut")) == CUTS
    assert stream.reconnects == CUTS, "one resume per cut"
    stored = stored_events(backend.conn, rollout["rollout_id"])
    assert len(stored) > LINES
    assert_exact_sequence(got, stored)
    assert got[-1]["event"] == "lifecycle" and got[-1]["data"]["status"] == "succeeded"
    agent_lines = [e["data"]["text"] for e in got if e["event"] == "agent"]
    assert agent_lines == [f"line {i} of {LINES}" for i in range(1, LINES + 1)]


def test_gateway_errors_and_stalls_on_reconnect_are_ridden_out(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    backend.pool("p", local_task("chatty", chatty_task(tmp_path, "chatty", 2_000)))
    faults = iter(
        [
            Fault.cut(3_000),
            Fault.error(502),
            Fault.error(503),
            Fault.cut(9_000, reset=True),
            Fault.error(504, reach_server=True),
            Fault.stall(3.0, after_bytes=5_000),
        ]
    )
    lock = threading.Lock()

    def plan(request: Any) -> Fault | None:
        if not request.matches("GET", r"/events$"):
            return None
        with lock:
            return next(faults, None)

    proxy.plan = plan
    rollout = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)
    # A read timeout shorter than the stall (heartbeats come every second here): the
    # stalled connection is given up and the stream resumes on a new one.
    stream = _stream(proxy, backend, rollout["rollout_id"], timeout=1.5)
    got = list(stream)
    assert proxy.summary()["error"] == 3 and len(proxy.faults("stall")) == 1
    assert stream.reconnects == 6
    assert_exact_sequence(got, stored_events(backend.conn, rollout["rollout_id"]))


def test_a_clean_early_close_is_resumed(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    backend.pool("p", local_task("chatty", chatty_task(tmp_path, "chatty", 2_000)))
    rollout = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)
    backend.wait(rollout["rollout_id"])  # finished: the case that lost events silently
    proxy.plan = randomly(
        1.0,
        lambda rng: Fault.clean_close(rng.randint(0, 20_000)),
        seed=5,
        method="GET",
        path=r"/events$",
        limit=10,
    )
    got = list(_stream(proxy, backend, rollout["rollout_id"]))
    assert proxy.faults("clean_close"), "the proxy closed a stream early"
    assert_exact_sequence(got, stored_events(backend.conn, rollout["rollout_id"]))
