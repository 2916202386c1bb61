"""A rollout's end cannot be lost, even when the store refuses to write it.

A rollout ends in one transaction: its artifacts, its document's final status and its
terminal lifecycle event. When the store refuses it (a full disk, no file descriptor
left, a database that cannot be written), the end is kept here instead of being lost
with the thread that tried: its terminal event goes to the live streams at once (through
the bus, under the ``seq`` it will be stored with), reads of the rollout show its final
status and event, and a thread writes it with backoff until the store takes it. Only a
restart before that loses it: the rollout then ends ``backend_restarted``, like any other
rollout that was running.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from envpools_cli.server.state.events import EventBus, Frame
from envpools_cli.server.state.frames import data_text, frame_text
from envpools_cli.server.state.store import Store, envelope, now_iso

__all__ = ["PendingEnd", "TerminalWrites"]

log = logging.getLogger("envpools.server.terminal")

FIRST_RETRY_SEC = 0.2
MAX_RETRY_SEC = 5.0


@dataclass
class PendingEnd:
    """An end the store has not taken yet, as the live streams already saw it."""

    rollout_id: str
    changes: dict[str, Any]
    data: dict[str, Any]
    entries: list[dict[str, Any]] | None
    seq: int
    timestamp: str
    frame: bytes
    error: str
    attempts: int = 1
    next_try: float = 0.0

    @property
    def envelope(self) -> dict[str, Any]:
        return envelope(self.seq, "lifecycle", self.timestamp, self.data)


class TerminalWrites:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._lock = threading.Lock()
        self._pending: dict[str, PendingEnd] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- ending ---------------------------------------------------------------------------

    def end(
        self,
        rollout_id: str,
        changes: dict[str, Any],
        data: dict[str, Any],
        *,
        entries: list[dict[str, Any]] | None = None,
        after_seq: int = 0,
        fallback: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store the end, or keep it and publish it live; the rollout's document as it ends.

        ``after_seq``: the last event seq the caller saw stored (used when the store cannot
        even be read); ``fallback``: the document as the caller knows it, for the same case.
        """
        timestamp = now_iso()
        try:
            return self._write(rollout_id, changes, data, entries, timestamp)
        except KeyError:  # no such rollout (any more): nothing to keep for it
            log.error("rollout %s ended %s but is not in the store", rollout_id, changes)
            return {**(fallback or {}), **changes}
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        try:
            after_seq = max(after_seq, self.store.last_seq(rollout_id))
            current = self.store.get_rollout(rollout_id) or fallback or {}
        except Exception:
            current = fallback or {}
        seq = after_seq + 1
        frame = frame_text(seq, "lifecycle", timestamp, data_text(data)).encode()
        pending = PendingEnd(
            rollout_id, changes, data, entries, seq, timestamp, frame, problem, attempts=1
        )
        pending.next_try = time.monotonic() + FIRST_RETRY_SEC
        with self._lock:
            self._pending[rollout_id] = pending
            self._start()
        log.error(
            "rollout %s ended %s but the store refused to record it (%s); its end is kept in "
            "memory, sent to live streams and written as soon as the store takes it",
            rollout_id,
            changes.get("status"),
            problem,
        )
        self.bus.notify(rollout_id, seq, frame, True)
        return {**current, **changes}

    def _write(
        self,
        rollout_id: str,
        changes: dict[str, Any],
        data: dict[str, Any],
        entries: list[dict[str, Any]] | None,
        timestamp: str,
    ) -> dict[str, Any]:
        doc, written, frame = self.store.end_rollout(
            rollout_id, changes, data, entries=entries, timestamp=timestamp
        )
        seq = written["seq"]
        self.store.after_commit(lambda: self.bus.notify(rollout_id, seq, frame, True))
        return doc

    # --- what reads see meanwhile ---------------------------------------------------------

    def pending(self, rollout_id: str) -> PendingEnd | None:
        with self._lock:
            return self._pending.get(rollout_id)

    def pending_ids(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def overlay(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` as it ends, when its end is still waiting for the store."""
        found = self.pending(str(doc.get("rollout_id")))
        return doc if found is None else {**doc, **found.changes}

    def frame_after(self, rollout_id: str, seq: int) -> Frame | None:
        """The kept terminal frame, if it comes after ``seq``."""
        found = self.pending(rollout_id)
        if found is None or found.seq <= seq:
            return None
        return (found.seq, 1, found.frame)

    # --- writing what was kept ------------------------------------------------------------

    def _start(self) -> None:
        """The retry thread, if none runs (called with the lock held)."""
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._retry, name="terminal-writes", daemon=True)
            self._thread.start()

    def _retry(self) -> None:
        try:
            while True:
                self._wake.clear()  # before looking: an end kept after this sets it again
                with self._lock:
                    if not self._pending:
                        self._thread = None
                        return
                    now = time.monotonic()
                    due = [p for p in self._pending.values() if p.next_try <= now]
                    wait = min(p.next_try for p in self._pending.values()) - now
                if not due:
                    self._wake.wait(max(0.01, wait))
                    continue
                for pending in due:
                    self._try(pending)
        finally:
            self.store.close()  # this thread's connection

    def _try(self, pending: PendingEnd) -> bool:
        try:
            self._write(
                pending.rollout_id,
                pending.changes,
                pending.data,
                pending.entries,
                pending.timestamp,
            )
        except KeyError:
            log.error(
                "rollout %s is not in the store any more: its end is dropped", pending.rollout_id
            )
            self._drop(pending)
            return True
        except Exception as exc:
            pending.attempts += 1
            pending.error = f"{type(exc).__name__}: {exc}"
            delay = min(FIRST_RETRY_SEC * 2 ** (pending.attempts - 1), MAX_RETRY_SEC)
            pending.next_try = time.monotonic() + delay
            return False
        self._drop(pending)
        log.warning(
            "rollout %s: its end (%s) is stored now, after %d attempts",
            pending.rollout_id,
            pending.changes.get("status"),
            pending.attempts + 1,
        )
        return True

    def _drop(self, pending: PendingEnd) -> None:
        with self._lock:
            if self._pending.get(pending.rollout_id) is pending:
                del self._pending[pending.rollout_id]

    def flush(self) -> list[str]:
        """Try every kept end now (at shutdown); the rollouts whose end is still not stored."""
        with self._lock:
            pending = list(self._pending.values())
        return [p.rollout_id for p in pending if not self._try(p)]
