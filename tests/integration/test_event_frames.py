"""Stored SSE frames: what the stream sends is what a JSON encoder would say, byte for byte
in meaning; an older database is moved to stored frames; the bus's cache never skips."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from envpools_cli.client.sse import SSEDecoder
from envpools_cli.server.state.events import RECENT_FRAMES, EventBus
from envpools_cli.server.state.frames import frame_envelope
from envpools_cli.server.state.store import Store

from .conftest import Backend, local_task, make_task

ODD = {"text": 'quote " back\\slash\nnewline \u2028 \u00e9 \U0001f600', "n": [1, 2.5, None]}


def test_a_stored_frame_is_one_valid_event(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    envelope, frame = store.append_event_frame("ro_1", "agent", ODD)
    assert frame.count(b"\n\n") == 1 and frame.endswith(b"\n\n")
    events = list(SSEDecoder().feed(frame))
    assert len(events) == 1
    assert events[0].id == "1" and events[0].event == "agent"
    assert json.loads(events[0].data) == envelope == frame_envelope(frame)
    assert store.events_after("ro_1", 0) == [envelope] and store.last_event("ro_1") == envelope
    # A lone surrogate (an agent printing broken UTF-16) is stored escaped, not refused.
    _, broken = store.append_event_frame("ro_1", "agent", {"text": "\ud800"})
    assert frame_envelope(broken)["data"] == {"text": "\ud800"}
    store.append_event_frame("ro_1", "lifecycle", {"status": "Succeeded"})
    rows = store.event_frames_after("ro_1", 0, limit=10)
    assert [(seq, terminal) for seq, terminal, _ in rows] == [(1, 0), (2, 0), (3, 1)]
    store.close()


def test_an_older_database_gets_stored_frames(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE events (rollout_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "event TEXT NOT NULL, timestamp TEXT NOT NULL, data TEXT NOT NULL, "
        "PRIMARY KEY (rollout_id, seq)) WITHOUT ROWID;"
    )
    rows = [
        ("ro_1", 1, "lifecycle", "2026-01-01T00:00:00.000Z", '{"status": "running"}'),
        ("ro_1", 2, "agent", "2026-01-01T00:00:01.000Z", json.dumps(ODD)),
        ("ro_1", 3, "lifecycle", "2026-01-01T00:00:02.000Z", '{"status": "failed"}'),
    ]
    old.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
    old.commit()
    old.close()
    store = Store(path)
    found = store.events_after("ro_1", 0)
    assert [e["data"] for e in found] == [{"status": "running"}, ODD, {"status": "failed"}]
    assert found[1] == {"id": "2", "event": "agent", "seq": 2, "timestamp": rows[1][3], "data": ODD}
    assert [t for _, t, _ in store.event_frames_after("ro_1", 0, limit=5)] == [0, 0, 1]
    # New events follow the migrated ones.
    assert store.append_event("ro_1", "agent", {})["seq"] == 4
    store.close()


def test_the_bus_cache_serves_only_runs_without_gaps() -> None:
    bus = EventBus()

    async def scenario() -> None:
        bus.notify("ro", 1, b"one")  # no tailer yet: nothing is kept
        with bus.subscribe("ro"):
            assert bus.recent_after("ro", 0, 10) == []
            bus.notify("ro", 3, b"three")  # 2's wake-up is late
            assert bus.recent_after("ro", 1, 10) == []
            bus.notify("ro", 2, b"two", terminal=False)
            bus.notify("ro", 4, b"four", terminal=True)
            assert bus.recent_after("ro", 1, 10) == [
                (2, 0, b"two"),
                (3, 0, b"three"),
                (4, 1, b"four"),
            ]
            assert bus.recent_after("ro", 1, 2) == [(2, 0, b"two"), (3, 0, b"three")]
            for seq in range(5, 5 + RECENT_FRAMES * 2):
                bus.notify("ro", seq, b"x")
            assert (
                bus.recent_after("ro", 1, 10) == []
            )  # pruned: a tailer this far back reads SQLite
        assert bus.recent_after("ro", 4, 10) == []  # the last tailer left: the cache went too

    asyncio.run(scenario())


def test_a_replay_is_sent_in_few_large_writes(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many frames per ASGI message, no JSON work per event: a regression to one message
    per event, or to decoding and encoding each event again, shows here."""
    task = make_task(tmp_path, "chatty", solve="seq 1 3000")
    backend.pool("p", local_task("chatty", task))
    rollout_id = backend.rollout("p", "chatty")["rollout_id"]
    backend.wait(rollout_id)
    chunks: list[bytes] = []
    calls = {"loads": 0, "dumps": 0}
    for name in calls:
        real = getattr(json, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(json, name, counted)
    url = f"{backend.url}/v1/rollouts/{rollout_id}/events"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {backend.key}"}) as answer:
        chunks.extend(answer.iter_raw())
    monkeypatch.undo()
    assert calls["loads"] + calls["dumps"] < 50, calls
    events = list(SSEDecoder().feed(b"".join(chunks)))
    assert sum(1 for e in events if e.event == "agent") >= 3000
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert len(chunks) < len(events) / 100, (len(chunks), len(events))
