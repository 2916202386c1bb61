"""``envpools rollouts tail`` says every interruption, once: the first cut and a restart too.

These run the real entry point in its own process, where ``tail ID -o jsonl`` starts on the
fast path (``fasttail.py``) and hands over to the full CLI at the first interruption.
Before: that hand-over was silent (119 notices for 120 cuts), and the full CLI, taking over
a stream that had never reached the backend *for it*, said nothing about a backend that was
down for a restart (and would have given up on it after 5 s, as on a backend never there).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from envpools_cli import client as ep
from tests.integration.conftest import Backend, local_task

from .conftest import (
    ServeProcess,
    assert_exact_sequence,
    chatty_task,
    rollout_request,
    stored_events,
)
from .proxy import Fault, FaultProxy, randomly

CUTS = 8


def _tail(url: str, key: str, rollout_id: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVPOOLS_", "SYNTH_"))}
    env.update(ENVPOOLS_API_URL=url, ENVPOOLS_API_KEY=key, ENVPOOLS_KEYRING="file")
    return subprocess.Popen(
        [sys.executable, "-m", "envpools_cli", "rollouts", "tail", rollout_id, "-o", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _printed(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line]
    assert lines[-1]["event"] == "end" and lines[-1]["data"]["reason"] == "terminal", lines[-1]
    return lines[:-1]


def test_tail_says_every_cut_the_first_one_included(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    task = chatty_task(tmp_path, "chatty", 3_000, sleep=4)
    backend.pool("p", local_task("chatty", task))
    rollout_id = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)[
        "rollout_id"
    ]
    # Every stream is cut once some events went through, the fast path's first of all.
    proxy.plan = randomly(
        1.0,
        lambda rng: Fault.cut(rng.randint(2_000, 20_000), reset=rng.random() < 0.5),
        seed=11,
        method="GET",
        path=r"/events$",
        limit=CUTS,
    )
    tail = _tail(proxy.url, backend.key, rollout_id)
    out, err = tail.communicate(timeout=100)
    assert tail.returncode == 0, err[-2000:]
    assert len(proxy.faults("cut")) == CUTS
    assert_exact_sequence(_printed(out), stored_events(backend.conn, rollout_id))
    notices = [line for line in err.splitlines() if "reconnecting" in line]
    assert len(notices) == CUTS, err
    assert "Traceback" not in err


def test_tail_says_a_backend_restart(serve_process: ServeProcess, tmp_path: Path) -> None:
    server = serve_process.start()
    slow = 'for i in $(seq 1 400); do echo "line $i"; sleep 0.05; done'
    task = chatty_task(tmp_path, "slow", 1)
    (task / "solution" / "solve.sh").write_text(f"#!/bin/bash\n{slow}\n")
    body = {
        "pool_id": "p",
        "pool_type": "sandbox",
        "tasks": [local_task("slow", task).model_dump()],
    }
    ep.create_pool(request=body, **server.conn)
    rollout_id = ep.create_rollout(request=rollout_request("p", "slow"), **server.conn)[
        "rollout_id"
    ]
    tail = _tail(server.url, server.key, rollout_id)
    deadline = time.monotonic() + 60
    while ep.get_rollout_summary(rollout_id, **server.conn)["event_count"] < 30:
        assert time.monotonic() < deadline and tail.poll() is None
        time.sleep(0.1)

    server.kill()
    time.sleep(random.uniform(0.5, 1.5))  # down for a while, then back on the same port
    server.start()
    out, err = tail.communicate(timeout=100)
    assert tail.returncode == 0, err[-2000:]
    printed = _printed(out)
    assert_exact_sequence(printed, stored_events(server.conn, rollout_id))
    assert printed[-1]["data"]["error"]["code"] == "backend_restarted"
    notices = [line for line in err.splitlines() if "reconnecting" in line]
    assert notices, f"the restart was not said: {err!r}"
    assert "connection lost" in notices[0]
    assert "Traceback" not in err
