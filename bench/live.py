"""Live event latency: many tailers on one running rollout.

An ``oracle`` rollout prints a line every ``interval`` seconds, each holding the wall
clock at which it was printed; ``tailers`` SSE connections (one asyncio loop, httpx) follow
the rollout from its creation. For every agent event each tailer receives, two latencies:

- ``publish``: from the event's stored ``timestamp`` (taken as the backend stores it, ms
  precision, so up to 1 ms too high) to its arrival at the tailer;
- ``print``: from the moment the agent printed the line (includes the sandbox's pipe and
  the runner reading it).

Each tailer is a process of its own: measured here, 32 httpx streams in one asyncio loop
add their own queueing (p50 ~20 ms against ~4 ms for a tailer among 31 ``curl``s).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.backend import Backend, make_task

#: The first line waits for the tailers to connect (checked: connected before it came).
SOLVE = """sleep {settle}
for i in $(seq 1 {count}); do echo "tick $(date +%s.%N)"; sleep {interval}; done"""


#: One tailer: a process of its own (as 32 people or scripts following one rollout would
#: be), reading with the standard library so that the measure is the server's, not a
#: shared client loop's. Prints its latencies as JSON when the stream ends.
TAILER = r"""
import http.client, json, sys, time
from datetime import datetime
netloc, path, key = sys.argv[1:4]
conn = http.client.HTTPConnection(netloc, timeout=120)
conn.request("GET", path, headers={"Authorization": "Bearer " + key})
answer = conn.getresponse()
connected, first, publish, printed, pending = 0.0, 0.0, [], [], b""
while True:
    chunk = answer.read1(65536)
    if not chunk:
        break
    arrived = time.time()
    connected = connected or arrived
    pending += chunk
    *frames, pending = pending.split(b"\n\n")
    for frame in frames:
        for line in frame.split(b"\n"):
            if not line.startswith(b"data: "):
                continue
            envelope = json.loads(line[6:])
            text = str((envelope.get("data") or {}).get("text", ""))
            if envelope.get("event") != "agent" or not text.startswith("tick "):
                continue
            stamp = datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00"))
            first = first or float(text.split()[1])
            publish.append(arrived - stamp.timestamp())
            printed.append(arrived - float(text.split()[1]))
print(json.dumps({"connected": connected, "first_print": first, "publish": publish,
                  "printed": printed}))
"""


def _run(backend: Backend, rollout_id: str, tailers: int) -> list[dict[str, Any]]:
    netloc = backend.url.removeprefix("http://")
    path = f"/v1/rollouts/{rollout_id}/events"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAILER, netloc, path, backend.key], stdout=subprocess.PIPE
        )
        for _ in range(tailers)
    ]
    return [json.loads(proc.communicate()[0]) for proc in procs]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_live(
    backend: Backend,
    root: Path,
    *,
    tailers: int = 32,
    count: int = 200,
    interval: float = 0.02,
    settle: float = 6.0,
) -> dict[str, Any]:
    solve = SOLVE.format(count=count, interval=interval, settle=settle)
    backend.pool("live", {"ticker": make_task(root, "ticker", solve)})
    rollout_id = backend.create("live", "ticker", harness="oracle")
    followers = _run(backend, rollout_id, tailers)
    counts = {len(t["publish"]) for t in followers}
    assert counts == {count}, counts  # every tailer got every event
    ready = max(t["connected"] for t in followers)
    assert ready < min(t["first_print"] for t in followers), "tailers connected late"
    publish = [x for t in followers for x in t["publish"]]
    printed = [x for t in followers for x in t["printed"]]
    return {
        "tailers": tailers,
        "events_per_tailer": count,
        "publish_p50_ms": statistics.median(publish) * 1000,
        "publish_p99_ms": percentile(publish, 0.99) * 1000,
        "publish_max_ms": max(publish) * 1000,
        "print_p50_ms": statistics.median(printed) * 1000,
        "print_p99_ms": percentile(printed, 0.99) * 1000,
    }


if __name__ == "__main__":
    with Backend() as server:
        print(json.dumps(bench_live(server, server.root / "tasks"), indent=2))
