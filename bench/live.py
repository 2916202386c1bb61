"""Live event latency: many tailers on one running rollout.

An ``oracle`` rollout prints a line every ``interval`` seconds, each holding the wall
clock at which it was printed; ``tailers`` SSE connections (one asyncio loop, httpx) follow
the rollout from its creation. For every agent event each tailer receives, two latencies:

- ``publish``: from the event's stored ``timestamp`` (taken as the backend stores it, ms
  precision, so up to 1 ms too high) to its arrival at the tailer;
- ``print``: from the moment the agent printed the line (includes the sandbox's pipe and
  the runner reading it).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.backend import Backend, make_task

#: The first line waits for the tailers to connect (checked: connected before it came).
SOLVE = """sleep {settle}
for i in $(seq 1 {count}); do echo "tick $(date +%s.%N)"; sleep {interval}; done"""


def _stamp(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class Tailer:
    def __init__(self) -> None:
        self.connected = 0.0  # when the first bytes came (the history replay)
        self.publish: list[float] = []
        self.printed: list[float] = []
        self.first_print = 0.0

    async def follow(self, client: httpx.AsyncClient, url: str) -> None:
        buffer = b""
        async with client.stream("GET", url) as answer:
            async for chunk in answer.aiter_raw():
                arrived = time.time()
                self.connected = self.connected or arrived
                buffer += chunk
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    for line in frame.split(b"\n"):
                        if line.startswith(b"data: "):
                            self._event(json.loads(line[6:]), arrived)

    def _event(self, envelope: dict[str, Any], arrived: float) -> None:
        text = str(envelope.get("data", {}).get("text", ""))
        if envelope.get("event") != "agent" or not text.startswith("tick "):
            return
        printed = float(text.split()[1])
        self.first_print = self.first_print or printed
        self.publish.append(arrived - _stamp(envelope["timestamp"]))
        self.printed.append(arrived - printed)


async def _run(backend: Backend, rollout_id: str, tailers: int) -> list[Tailer]:
    url = f"{backend.url}/v1/rollouts/{rollout_id}/events"
    limits = httpx.Limits(max_connections=tailers + 4)
    headers = {"Authorization": f"Bearer {backend.key}"}
    followers = [Tailer() for _ in range(tailers)]
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=120) as client:
        await asyncio.gather(*(t.follow(client, url) for t in followers))
    return followers


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
    settle: float = 2.0,
) -> dict[str, Any]:
    solve = SOLVE.format(count=count, interval=interval, settle=settle)
    backend.pool("live", {"ticker": make_task(root, "ticker", solve)})
    rollout_id = backend.create("live", "ticker", harness="oracle")
    followers = asyncio.run(_run(backend, rollout_id, tailers))
    counts = {len(t.publish) for t in followers}
    assert counts == {count}, counts  # every tailer got every event
    ready = max(t.connected for t in followers)
    assert ready < min(t.first_print for t in followers), "tailers connected late"
    publish = [x for t in followers for x in t.publish]
    printed = [x for t in followers for x in t.printed]
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
