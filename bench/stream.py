"""Event stream throughput and memory, measured side by side in one run.

    .venv/bin/python bench/stream.py [--events 20000]

1. decode: the SSE decoder + envelope building vs plain ``json.loads`` of the same
   envelopes (the floor any client pays);
2. end to end: a real local backend replays a finished rollout's N agent events over
   loopback to the client, vs the raw bytes of the same response read by httpx;
3. live: how fast the backend stores and serves events an agent prints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envpools_cli import client as ep
from envpools_cli.client.sse import SSEDecoder, envelope_from


def frames(count: int) -> bytes:
    chunks = []
    for seq in range(1, count + 1):
        envelope = {
            "id": str(seq),
            "event": "agent",
            "seq": seq,
            "timestamp": "2026-11-28T00:00:00.000Z",
            "data": {"line": seq, "text": f"output line {seq} " + "x" * 60},
        }
        chunks.append(f"id: {seq}\nevent: agent\ndata: {json.dumps(envelope)}\n\n")
    return "".join(chunks).encode()


def bench_decode(count: int, rounds: int = 5) -> dict[str, float]:
    """The decoder against bare ``json.loads`` of the same payloads, in alternating rounds,
    fastest of each: a busy neighbour slows both sides of a round, not one."""
    raw = frames(count)
    payloads = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]

    def floor_once() -> float:
        started = time.perf_counter()
        for payload in payloads:
            json.loads(payload)
        return time.perf_counter() - started

    def decode_once() -> float:
        started = time.perf_counter()
        decoder = SSEDecoder()
        seen = 0
        for offset in range(0, len(raw), 65536):
            for event in decoder.feed(raw[offset : offset + 65536]):
                envelope_from(event)
                seen += 1
        elapsed = time.perf_counter() - started
        assert seen == count
        return elapsed

    floor = decode = float("inf")
    for _ in range(rounds):
        floor = min(floor, floor_once())
        decode = min(decode, decode_once())
    return {
        "events_per_sec": count / decode,
        "json_loads_per_sec": count / floor,
        "ratio_to_json_loads": floor / decode,
    }


def bench_end_to_end(count: int) -> dict[str, float]:
    from envpools_cli.server.serve import BackendThread
    from envpools_cli.server.settings import ServerSettings
    from tests.integration.conftest import local_task, make_task

    root = Path(tempfile.mkdtemp())
    with BackendThread(ServerSettings(data_dir=root / "data")) as backend:
        _, key = backend.create_key()
        conn = {"backend_base": backend.url, "api_key": key}
        task = make_task(root, "chatty", solve=f"seq 1 {count}")
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [local_task("chatty", task).model_dump()],
            },
            **conn,
        )
        request = {
            "task_ref": {"dataset": "d", "task_id": "chatty"},
            "agent": {"harness": "oracle"},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {},
        }
        rid = ep.create_rollout(request=request, **conn)["rollout_id"]
        started = time.perf_counter()
        live = sum(1 for _ in ep.stream_rollout_events(rid, **conn))
        live_seconds = time.perf_counter() - started
        url = f"{backend.url}/v1/rollouts/{rid}/events"
        raw_times, client_times = [], []
        for _ in range(3):
            started = time.perf_counter()
            with httpx.stream("GET", url, headers={"Authorization": f"Bearer {key}"}) as r:
                size = sum(len(chunk) for chunk in r.iter_raw())
            raw_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            received = sum(1 for _ in ep.stream_rollout_events(rid, **conn))
            client_times.append(time.perf_counter() - started)
        tracemalloc.start()  # separately: tracing slows everything down
        sum(1 for _ in ep.stream_rollout_events(rid, **conn))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        raw_s, client_s = statistics.median(raw_times), statistics.median(client_times)
    return {
        "events": received,
        "bytes": size,
        "live_events_per_sec": live / live_seconds,
        "replay_events_per_sec": received / client_s,
        "raw_read_seconds": raw_s,
        "client_seconds": client_s,
        "client_over_raw_read": client_s / raw_s,
        "client_peak_mib": peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    decode = bench_decode(args.events)
    print(
        f"decode      {decode['events_per_sec']:>10,.0f} events/s   "
        f"json.loads {decode['json_loads_per_sec']:>10,.0f}/s   "
        f"ratio {decode['ratio_to_json_loads']:.2f}"
    )
    e2e = bench_end_to_end(args.events)
    print(
        f"live        {e2e['live_events_per_sec']:>10,.0f} events/s (agent prints, backend "
        "stores, client reads)"
    )
    print(
        f"replay      {e2e['replay_events_per_sec']:>10,.0f} events/s   "
        f"{e2e['client_over_raw_read']:.2f}x the time of reading the raw bytes "
        f"({e2e['bytes'] / 2**20:.1f} MiB)   client peak {e2e['client_peak_mib']:.2f} MiB"
    )


if __name__ == "__main__":
    main()
