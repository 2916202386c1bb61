"""Which queued rollout runs next, and cancelling at any stage.

Queued rollouts start in order of priority (higher first), then age, as long as their
pool has a free slot (``concurrency``/``max_running``) and the machine-wide cap allows.
A restart marks rollouts that were starting/running/verifying as ``error``
(``backend_restarted``); queued ones simply run.

No rollout stays active without a runner: a runner thread that died without ending its
rollout, or a rollout left active with no runner at all, is ended ``error``
(``runner_lost``) within a few seconds. Below the data folder's free-space floor no
queued rollout starts (it would fail half-way); they start once there is room again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from envpools_cli.models import ACTIVE_STATUSES as _ACTIVE
from envpools_cli.models import TERMINAL_STATUSES
from envpools_cli.server.context import ServerContext
from envpools_cli.server.scheduling.memory import release_freed_memory
from envpools_cli.server.state.exhaustion import low_on_disk
from envpools_cli.server.state.store import now_iso
from envpools_cli.server.trial.runner import Outcome, RolloutRunner

__all__ = ["ACTIVE_STATUSES", "Scheduler"]

log = logging.getLogger("envpools.server.scheduler")

ACTIVE_STATUSES: tuple[str, ...] = tuple(sorted(_ACTIVE))
#: How long an active rollout may be seen without a runner before it is ended.
ORPHAN_GRACE_SEC = 2.0


def _runner_lost(detail: str) -> Outcome:
    return Outcome(
        "error",
        {"code": "runner_lost", "message": f"the backend lost this rollout's runner: {detail}"},
    )


class Scheduler:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._cond = threading.Condition()
        self._runners: dict[str, RolloutRunner] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._orphans: dict[str, float] = {}
        """Active rollouts seen without a runner, and since when."""
        self._low_on_disk = False

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
            self.ctx.ends.end(
                doc["rollout_id"],
                {"status": "error", "finished_at": now_iso(), "error": error},
                {"status": "error", "previous": doc["status"], "error": error},
                fallback=doc,
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
                self._reap()
            except Exception:
                log.exception("scheduler: looking for lost runners failed")
            try:
                self._dispatch()
            except Exception:
                log.exception("scheduler dispatch failed")

    def _dispatch(self) -> None:
        queued = self.ctx.store.rollouts_with_status("queued")
        if not queued or self._disk_too_low():
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

    def _disk_too_low(self) -> bool:
        """Below the free-space floor: hold the queue (said once in the log)."""
        settings = self.ctx.settings
        low = low_on_disk(settings.data_dir, settings.min_free_mb)
        if low is not None and not self._low_on_disk:
            log.warning("not starting queued rollouts: %s", low.message)
        elif low is None and self._low_on_disk:
            log.warning("there is room in %s again: starting queued rollouts", settings.data_dir)
        self._low_on_disk = low is not None
        return self._low_on_disk

    def _reap(self) -> None:
        """End what is active with no runner behind it: a runner thread that died without
        ending its rollout, or an active rollout that never got one."""
        with self._cond:
            dead = [
                (rollout_id, runner)
                for rollout_id, runner in self._runners.items()
                if (thread := self._threads.get(rollout_id)) is not None
                and thread.ident is not None  # started
                and not thread.is_alive()
            ]
        for rollout_id, runner in dead:
            runner.end(_runner_lost("its thread stopped without ending it"))
            self._forget(rollout_id, runner)
        active = self.ctx.store.rollout_ids_with_status(*ACTIVE_STATUSES)
        kept = self.ctx.ends.pending_ids()
        now = time.monotonic()
        with self._cond:
            seen = {r for r in active if r not in self._runners and r not in kept}
        self._orphans = {r: self._orphans.get(r, now) for r in seen}
        for rollout_id, since in list(self._orphans.items()):
            if now - since >= ORPHAN_GRACE_SEC:
                self._end_orphan(rollout_id, _runner_lost("it had none (it never started)"))
                self._orphans.pop(rollout_id, None)

    def _forget(self, rollout_id: str, runner: RolloutRunner) -> None:
        with self._cond:
            if self._runners.get(rollout_id) is runner:
                self._runners.pop(rollout_id, None)
                self._threads.pop(rollout_id, None)
            self._cond.notify_all()

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
        except BaseException as exc:
            log.exception("rollout %s: its runner failed", runner.rollout_id)
            runner.end(_runner_lost(f"{type(exc).__name__}: {exc}"))
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

    def _end_orphan(self, rollout_id: str, outcome: Outcome | None = None) -> None:
        """An active rollout with no runner (its runner failed to start): end it here.

        Under the lock no runner can take it; a runner that had it ended it before letting
        go, so the store (or the ends kept in memory) shows that end.
        """
        outcome = outcome or Outcome(
            "cancelled", {"code": "cancelled", "message": "cancelled by request"}
        )
        with self._cond:
            if rollout_id in self._runners or self.ctx.ends.pending(rollout_id) is not None:
                return
            doc = self.ctx.store.get_rollout(rollout_id)
            if doc is None or doc["status"] not in ACTIVE_STATUSES:
                return
            self.ctx.ends.end(
                rollout_id,
                {"status": outcome.status, "finished_at": now_iso(), "error": outcome.error},
                {"status": outcome.status, "previous": doc["status"], "error": outcome.error},
                fallback=doc,
            )
