"""Event fan-out: workers append events to the store, tailers wake up and read them.

Events are durable in SQLite; the bus only says "something new for rollout X", so a
tailer can never miss one: it clears its flag before reading, and any event appended
after that sets it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from envpools_cli.server.store import now_iso

__all__ = ["EventBus", "heartbeat_frame", "sse_frame"]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(set)
        )

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

    def notify(self, rollout_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(rollout_id, ()))
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop: its tailer is gone
                loop.call_soon_threadsafe(flag.set)

    def subscribers(self, rollout_id: str) -> int:
        with self._lock:
            return len(self._waiters.get(rollout_id, ()))


def sse_frame(envelope: dict[str, Any]) -> bytes:
    data = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    return f"id: {envelope['seq']}\nevent: {envelope['event']}\ndata: {data}\n\n".encode()


def heartbeat_frame() -> bytes:
    data = json.dumps(
        {"event": "heartbeat", "timestamp": now_iso(), "data": {}}, separators=(",", ":")
    )
    return f"event: heartbeat\ndata: {data}\n\n".encode()
