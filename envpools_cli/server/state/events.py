"""Event fan-out: workers append events to the store, tailers wake up and read them.

Events are durable in SQLite; the bus says "something new for rollout X", so a tailer
can never miss one: it clears its flag before reading, and any event appended after that
sets it again. While a rollout has tailers, the bus also keeps the encoded frames of its
newest events, so that a tailer that is caught up sends them without a database read (a
thread hop and a query per tailer per event); a tailer that fell further behind, or
finds a gap (two writers' wake-ups may arrive out of order), reads the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from envpools_cli.server.state.store import now_iso

__all__ = ["EventBus", "Frame", "heartbeat_frame"]

#: ``(seq, terminal, frame)``, as ``Store.event_frames_after`` returns them.
Frame = tuple[int, int, bytes]

#: Newest frames kept per rollout that has tailers.
RECENT_FRAMES = 1024


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(set)
        )
        self._recent: dict[str, dict[int, tuple[int, bytes]]] = {}

    @contextmanager
    def subscribe(self, rollout_id: str) -> Iterator[asyncio.Event]:
        """An asyncio.Event set whenever ``rollout_id`` gets an event (call inside a loop)."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters[rollout_id].add(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(rollout_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[rollout_id]
                        self._recent.pop(rollout_id, None)

    def notify(
        self,
        rollout_id: str,
        seq: int | None = None,
        frame: bytes | None = None,
        terminal: bool = False,
    ) -> None:
        """Wake ``rollout_id``'s tailers; ``frame`` is event ``seq``'s, committed already."""
        with self._lock:
            waiters = list(self._waiters.get(rollout_id, ()))
            if waiters and seq is not None and frame is not None:
                recent = self._recent.setdefault(rollout_id, {})
                recent[seq] = (int(terminal), frame)
                if len(recent) > RECENT_FRAMES:
                    for old in list(itertools.islice(recent, len(recent) - RECENT_FRAMES // 2)):
                        del recent[old]
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: its tailer is gone
                loop.call_soon_threadsafe(flag.set)

    def recent_after(self, rollout_id: str, after_seq: int, limit: int) -> list[Frame]:
        """The cached frames that follow ``after_seq`` without a gap (maybe none)."""
        found: list[Frame] = []
        with self._lock:
            recent = self._recent.get(rollout_id)
            if not recent:
                return found
            seq = after_seq + 1
            while len(found) < limit and (hit := recent.get(seq)) is not None:
                found.append((seq, hit[0], hit[1]))
                seq += 1
        return found

    def subscribers(self, rollout_id: str) -> int:
        with self._lock:
            return len(self._waiters.get(rollout_id, ()))


def heartbeat_frame() -> bytes:
    data = json.dumps(
        {"event": "heartbeat", "timestamp": now_iso(), "data": {}}, separators=(",", ":")
    )
    return f"event: heartbeat\ndata: {data}\n\n".encode()
