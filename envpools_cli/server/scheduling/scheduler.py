"""Which queued rollout runs next, and cancelling at any stage.

Queued rollouts start in order of priority (higher first), then age, as long as their
pool has a free slot (``concurrency``/``max_running``) and the machine-wide cap allows.
A restart marks rollouts that were starting/running/verifying as ``error``
(``backend_restarted``); queued ones simply run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from envpools_cli.models import ACTIVE_STATUSES as _ACTIVE
from envpools_cli.models import TERMINAL_STATUSES
from envpools_cli.server.context import ServerContext
from envpools_cli.server.scheduling.memory import release_freed_memory
from envpools_cli.server.state.store import now_iso
from envpools_cli.server.trial.runner import Outcome, RolloutRunner

__all__ = ["ACTIVE_STATUSES", "Scheduler"]

log = logging.getLogger("envpools.server.scheduler")

ACTIVE_STATUSES: tuple[str, ...] = tuple(sorted(_ACTIVE))


class Scheduler:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._cond = threading.Condition()
        self._runners: dict[str, RolloutRunner] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            runners = list(self._runners.values())
            self._cond.notify_all()
        for runner in runners:
            runner.shutting_down = True
            runner.cancel.set()
        for thread in list(self._threads.values()):
            thread.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def recover(self) -> None:
        """Rollouts that were running when the backend stopped cannot be resumed."""
        for doc in self.ctx.store.rollouts_with_status(*ACTIVE_STATUSES):
            error = {
                "code": "backend_restarted",
                "message": "the local backend stopped while this rollout was "
                f"{doc['status']}; it was not finished",
            }
            self.ctx.store.update_rollout(
                doc["rollout_id"], status="error", finished_at=now_iso(), error=error
            )
            self.ctx.publish(
                doc["rollout_id"],
                "lifecycle",
                {"status": "error", "previous": doc["status"], "error": error},
            )

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # --- dispatch -------------------------------------------------------------------------

    def running_in(self, pool_id: str | None) -> int:
        with self._cond:
            return sum(1 for r in self._runners.values() if r.doc.get("pool_id") == pool_id)

    def _limit(self, org_id: str, pool_id: str | None) -> int:
        pool = self.ctx.store.get_pool(org_id, pool_id) if pool_id else None
        pool = pool or {}
        limits = [
            v
            for v in (pool.get("concurrency"), pool.get("max_running"))
            if isinstance(v, int) and v >= 0
        ]
        return min(limits) if limits else self.ctx.settings.default_concurrency

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(timeout=1.0)
                if self._stopping:
                    return
            try:
                self._dispatch()
            except Exception:
                log.exception("scheduler dispatch failed")

    def _dispatch(self) -> None:
        queued = self.ctx.store.rollouts_with_status("queued")
        if not queued:
            return
        with self._cond:
            busy: dict[tuple[str, str | None], int] = {}
            for runner in self._runners.values():
                key = (runner.doc["org_id"], runner.doc.get("pool_id"))
                busy[key] = busy.get(key, 0) + 1
            total = len(self._runners)
        for doc in queued:
            if total >= self.ctx.settings.max_running:
                return
            key = (doc["org_id"], doc.get("pool_id"))
            if busy.get(key, 0) >= self._limit(*key):
                continue
            with self._cond:  # a cancel sees the rollout either queued or with its runner
                if not self._claim(doc["rollout_id"]):
                    continue
                busy[key] = busy.get(key, 0) + 1
                total += 1
                self._launch(doc["rollout_id"])

    def _claim(self, rollout_id: str) -> bool:
        """queued -> starting, unless something else (a cancel) got there first."""
        store = self.ctx.store
        with store.tx():
            doc = store.get_rollout(rollout_id)
            if doc is None or doc["status"] != "queued":
                return False
            store.update_rollout(rollout_id, status="starting")
        self.ctx.publish(rollout_id, "lifecycle", {"status": "starting", "previous": "queued"})
        return True

    def _launch(self, rollout_id: str) -> None:
        try:
            runner = RolloutRunner(self.ctx, rollout_id)
        except KeyError:
            return
        thread = threading.Thread(
            target=self._work, args=(runner,), name=f"rollout-{rollout_id}", daemon=True
        )
        with self._cond:
            self._runners[rollout_id] = runner
            self._threads[rollout_id] = thread
        thread.start()

    def _work(self, runner: RolloutRunner) -> None:
        try:
            runner.run()
        finally:
            with self._cond:
                if self._runners.get(runner.rollout_id) is runner:
                    self._runners.pop(runner.rollout_id, None)
                    self._threads.pop(runner.rollout_id, None)
                idle = not self._runners
                self._cond.notify_all()
            # This thread's SQLite connection goes now rather than whenever the thread
            # object is collected, and what the rollout freed goes back (memory.py).
            self.ctx.store.close()
            release_freed_memory(idle=idle)

    # --- cancel ---------------------------------------------------------------------------

    def cancel(self, rollout_id: str) -> dict[str, Any]:
        """Cancel at any stage; a terminal rollout is returned unchanged."""
        store = self.ctx.store
        with store.tx():
            doc = store.get_rollout(rollout_id)
            if doc is None:
                raise KeyError(rollout_id)
            if doc["status"] == "queued":
                error = {"code": "cancelled", "message": "cancelled by request before it started"}
                doc = store.update_rollout(
                    rollout_id, status="cancelled", finished_at=now_iso(), error=error
                )
                queued = True
            else:
                queued = False
        if queued:
            self.ctx.publish(
                rollout_id,
                "lifecycle",
                {"status": "cancelled", "previous": "queued", "error": doc["error"]},
            )
            self.wake()
            return doc
        if doc["status"] in TERMINAL_STATUSES:
            return doc
        with self._cond:
            runner = self._runners.get(rollout_id)
            thread = self._threads.get(rollout_id)
        if runner is not None:
            runner.cancel.set()
            if thread is not None:
                thread.join(timeout=self.ctx.settings.cancel_grace_sec)
            if not runner.ended:
                # The runner did not get there in time (a stuck step): end it regardless.
                # Its thread may still finish its step, but can no longer change the rollout.
                runner.end(
                    Outcome(
                        "cancelled",
                        {
                            "code": "cancelled",
                            "message": "cancelled by request; it did not stop within "
                            f"{self.ctx.settings.cancel_grace_sec:g}s and was ended regardless",
                        },
                    )
                )
                with self._cond:
                    if self._runners.get(rollout_id) is runner:
                        self._runners.pop(rollout_id, None)
                        self._threads.pop(rollout_id, None)
                    self._cond.notify_all()
        else:
            self._end_orphan(rollout_id)
        return store.get_rollout(rollout_id) or doc

    def _end_orphan(self, rollout_id: str) -> None:
        """An active rollout with no runner (its runner failed to start): end it here."""
        store = self.ctx.store
        with self._cond, store.tx():
            if rollout_id in self._runners:
                return
            doc = store.get_rollout(rollout_id)
            if doc is None or doc["status"] not in ACTIVE_STATUSES:
                return
            error = {"code": "cancelled", "message": "cancelled by request"}
            store.update_rollout(rollout_id, status="cancelled", finished_at=now_iso(), error=error)
        self.ctx.publish(
            rollout_id,
            "lifecycle",
            {"status": "cancelled", "previous": doc["status"], "error": error},
        )
