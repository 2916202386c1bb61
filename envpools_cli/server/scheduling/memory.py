"""Give the memory a finished rollout freed back to the system (issue 12: flat RSS).

Every rollout runs in a thread of its own, with its own SQLite connection (page cache,
schema, statements) and its own allocations; glibc serves threads from several arenas
and keeps what they free. Measured over 1000 ``nop`` rollouts at concurrency 16, RSS
kept rising by 13-33 KiB a rollout after the first 200 while the Python heap
(``tracemalloc``) stayed flat: memory freed but held. ``malloc_trim(0)`` returns the
free pages of every arena. It is called when a rollout thread ends, at most once a
second (it walks the arenas: ~1 ms here), and always when the last running rollout ends.
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["release_freed_memory"]

MIN_INTERVAL_SEC = 1.0

_lock = threading.Lock()
_last = 0.0
_trim: list[Callable[[int], int] | None] = []


def _malloc_trim() -> Callable[[int], int] | None:
    if not _trim:
        try:
            import ctypes

            _trim.append(ctypes.CDLL(None).malloc_trim)
        except (OSError, AttributeError):  # not glibc
            _trim.append(None)
    return _trim[0]


def release_freed_memory(*, idle: bool) -> None:
    """After a rollout ended; ``idle``: no other rollout is running now."""
    global _last
    now = time.monotonic()
    with _lock:
        if not idle and now - _last < MIN_INTERVAL_SEC:
            return
        _last = now
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
