"""Which queued rollout runs next, admission by resources, and cancelling at any stage.

Queued rollouts start in order of priority (higher first), then age, as long as their
pool has a free slot (``concurrency``/``max_running``) and the executor has room for
what they reserve (``admission.py``). The queue lives in memory as well as in the
database: a heap per pool, filled from the database once at start and then by each
create, so that choosing the next rollout reads neither the whole queue nor any rollout
document; it costs the same with 10 or 10,000 rollouts queued. When the first rollout
in line does not fit (a heavy task), the ones behind it wait too, so that it is not
starved by a stream of small ones.

A restart marks rollouts that were starting/running/verifying as ``error``
(``backend_restarted``); queued ones simply run.

No rollout stays active without a trial: a trial whose thread died without ending its
rollout (``LocalExecutor.reap``), or a rollout left active that no executor has, is ended
``error`` (``runner_lost``) within a few seconds. Below the data folder's free-space
floor no queued rollout starts (it would fail half-way); they start once there is room.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from envpools_cli.models import ACTIVE_STATUSES as _ACTIVE
from envpools_cli.models import TERMINAL_STATUSES
from envpools_cli.server.context import ServerContext
from envpools_cli.server.scheduling.admission import Reservation, Usage, Waiting
from envpools_cli.server.scheduling.executor import Executor
from envpools_cli.server.scheduling.reporting import trial_input
from envpools_cli.server.state.exhaustion import low_on_disk
from envpools_cli.server.state.store import now_iso
from envpools_cli.server.trial.runner import Outcome, runner_lost

__all__ = ["ACTIVE_STATUSES", "Scheduler"]

log = logging.getLogger("envpools.server.scheduler")

ACTIVE_STATUSES: tuple[str, ...] = tuple(sorted(_ACTIVE))
#: How long an active rollout may be seen without a trial before it is ended.
ORPHAN_GRACE_SEC = 2.0

PoolKey = tuple[str, str | None]
"""(org_id, pool_id); pool_id None for ad-hoc rollouts."""


@dataclass(order=True)
class _Queued:
    order: tuple[int, int]
    """(-priority, creation order): the smallest starts first."""
    rollout_id: str = field(compare=False)
    key: PoolKey = field(compare=False)
    reservation: Reservation = field(compare=False)
    removed: bool = field(default=False, compare=False)


@dataclass
class DispatchStats:
    """What dispatching costs: CPU time of the passes that launched rollouts."""

    passes: int = 0
    launched: int = 0
    cpu_sec: float = 0.0
    launch_cpu_sec: float = 0.0

    def describe(self) -> dict[str, Any]:
        per = self.launch_cpu_sec / self.launched if self.launched else None
        return {
            "passes": self.passes,
            "launched": self.launched,
            "cpu_ms": round(self.cpu_sec * 1000, 3),
            "cpu_ms_per_launch": round(per * 1000, 4) if per is not None else None,
        }


class Scheduler:
    def __init__(self, ctx: ServerContext, executor: Executor) -> None:
        self.ctx = ctx
        self.executor = executor
        executor.bind(self._ended)
        self._cond = threading.Condition()
        self._queues: dict[PoolKey, list[_Queued]] = {}
        self._queued: dict[str, _Queued] = {}
        self._running: dict[str, tuple[PoolKey, Reservation]] = {}
        self._busy: dict[PoolKey, int] = {}
        self._depth: dict[PoolKey, int] = {}
        self._used = Usage()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stats = DispatchStats()
        self._orphans: dict[str, float] = {}
        """Active rollouts seen without a trial, and since when."""
        self._low_on_disk = False
        self._reaped = 0.0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._load()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.executor.stop(timeout)
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

    def _load(self) -> None:
        """The queue as the database has it: once, at start (no document is decoded)."""
        for n, rollout_id, org_id, pool_id, priority, reservation in self.ctx.store.queued_index():
            self.enqueue(
                rollout_id,
                org_id=org_id,
                pool_id=pool_id,
                priority=priority,
                order=n,
                reservation=Reservation.from_doc(reservation),
                wake=False,
            )
        self.wake()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # --- the queue ------------------------------------------------------------------------

    def enqueue(
        self,
        rollout_id: str,
        *,
        org_id: str,
        pool_id: str | None,
        priority: int,
        order: int,
        reservation: Reservation,
        wake: bool = True,
    ) -> None:
        """A rollout the database holds as ``queued`` (call once its insert is committed)."""
        entry = _Queued((-priority, order), rollout_id, (org_id, pool_id), reservation)
        with self._cond:
            if rollout_id in self._queued or rollout_id in self._running:
                return
            self._queued[rollout_id] = entry
            heapq.heappush(self._queues.setdefault(entry.key, []), entry)
            self._depth[entry.key] = self._depth.get(entry.key, 0) + 1
            if wake:
                self._cond.notify_all()

    def _forget(self, rollout_id: str) -> None:
        """Leave the queue (cancelled); the heap drops the entry when it reaches the top."""
        with self._cond:
            entry = self._queued.pop(rollout_id, None)
            if entry is not None:
                entry.removed = True
                self._shallower(entry.key)
                self._cond.notify_all()

    def _shallower(self, key: PoolKey) -> None:
        depth = self._depth.get(key, 0) - 1
        if depth > 0:
            self._depth[key] = depth
        else:
            self._depth.pop(key, None)

    def _head(self, key: PoolKey) -> _Queued | None:
        heap = self._queues.get(key)
        while heap and heap[0].removed:
            heapq.heappop(heap)
        if not heap:
            self._queues.pop(key, None)
            return None
        return heap[0]

    # --- dispatch -------------------------------------------------------------------------

    def load(self, org_id: str, pool_id: str | None) -> tuple[int, int]:
        """(queued, running) of a pool, from memory: what a create checks against
        ``max_queue`` and ``pool_tags`` routing weighs, without counting rows."""
        key = (org_id, pool_id)
        with self._cond:
            return self._depth.get(key, 0), self._busy.get(key, 0)

    def running_in(self, pool_id: str | None) -> int:
        with self._cond:
            return sum(n for (_, pool), n in self._busy.items() if pool == pool_id)

    def _limit(self, key: PoolKey) -> int:
        org_id, pool_id = key
        pool = (self.ctx.store.get_pool(org_id, pool_id) if pool_id else None) or {}
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
                log.exception("scheduler: looking for lost trials failed")
            try:
                self._dispatch()
            except Exception:
                log.exception("scheduler dispatch failed")

    def _dispatch(self) -> None:
        """Launch queued rollouts until none can start: each step looks at one head per
        pool that has a queue, never at the rollouts behind them."""
        started = time.thread_time()
        if self._disk_too_low():
            return
        limits: dict[PoolKey, int] = {}
        launched = 0
        while True:
            with self._cond:
                keys = list(self._queues)
            for key in keys:
                if key not in limits:
                    limits[key] = self._limit(key)
            with self._cond:
                if self._stopping:
                    break
                entry = self._next(limits)
                if entry is None:
                    break
                self._queued.pop(entry.rollout_id, None)
                heapq.heappop(self._queues[entry.key])
                self._shallower(entry.key)
                if not self._claim(entry.rollout_id):
                    continue
                self._running[entry.rollout_id] = (entry.key, entry.reservation)
                self._busy[entry.key] = self._busy.get(entry.key, 0) + 1
                self._used.add(entry.reservation)
                launched += 1
                self._launch(entry)
        spent = time.thread_time() - started
        self.stats.passes += 1
        self.stats.cpu_sec += spent
        if launched:
            self.stats.launched += launched
            self.stats.launch_cpu_sec += spent

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
        """End what is active with no trial behind it: a trial whose thread died without
        ending its rollout (the executor's ``reap``), or an active rollout none has. At
        most once a second: the loop also wakes for every create."""
        if time.monotonic() - self._reaped < 1.0:
            return
        self._reaped = time.monotonic()
        self.executor.reap()
        active = self.ctx.store.rollout_ids_with_status(*ACTIVE_STATUSES)
        kept = self.ctx.ends.pending_ids()
        now = time.monotonic()
        with self._cond:
            seen = {r for r in active if r not in self._running and r not in kept}
        self._orphans = {r: self._orphans.get(r, now) for r in seen}
        for rollout_id, since in list(self._orphans.items()):
            if now - since >= ORPHAN_GRACE_SEC:
                self._end_orphan(rollout_id, runner_lost("it had none (it never started)"))
                self._orphans.pop(rollout_id, None)

    def _next(self, limits: dict[PoolKey, int]) -> _Queued | None:
        """The first rollout in line whose pool has a free slot, if it fits (under _cond)."""
        heads = [h for key in list(self._queues) if (h := self._head(key)) is not None]
        heads.sort()
        capacity = self.executor.capacity()
        for head in heads:
            if self._busy.get(head.key, 0) >= limits.get(head.key, 0):
                continue
            if capacity.waiting(head.reservation, self._used) is not None:
                return None  # it keeps its place: the ones behind it wait too
            return head
        return None

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

    def _launch(self, entry: _Queued) -> None:
        try:
            self.executor.start(trial_input(self.ctx, entry.rollout_id))
        except KeyError:  # deleted meanwhile
            self._release(entry.rollout_id)
        except Exception as exc:
            log.exception("rollout %s could not be started", entry.rollout_id)
            self._release(entry.rollout_id)
            error = {
                "code": "internal",
                "message": f"the {self.executor.name} executor could not start it: "
                f"{type(exc).__name__}: {str(exc)[:500]}",
            }
            self.ctx.store.update_rollout(
                entry.rollout_id, status="error", finished_at=now_iso(), error=error
            )
            self.ctx.publish(
                entry.rollout_id,
                "lifecycle",
                {"status": "error", "previous": "starting", "error": error},
            )

    def _ended(self, rollout_id: str) -> None:
        """The executor's word that a trial is over: its reservation is free again."""
        self._release(rollout_id)

    def _release(self, rollout_id: str) -> None:
        with self._cond:
            found = self._running.pop(rollout_id, None)
            if found is not None:
                key, reservation = found
                self._busy[key] = max(0, self._busy.get(key, 0) - 1)
                if not self._busy[key]:
                    del self._busy[key]
                self._used.remove(reservation)
            self._cond.notify_all()

    # --- why a rollout waits --------------------------------------------------------------

    def waiting(self, rollout_id: str) -> dict[str, str] | None:
        """Why a queued rollout has not started (None when it is not in the queue)."""
        with self._cond:
            entry = self._queued.get(rollout_id)
            if entry is None:
                return None
            key, reservation = entry.key, entry.reservation
            busy = self._busy.get(key, 0)
            head = self._head(key)
        limit = self._limit(key)
        reason = self._pool_reason(key, busy, limit)
        if reason is None:
            with self._cond:
                reason = self.executor.capacity().waiting(reservation, self._used)
        if reason is None and head is not None and head.rollout_id != rollout_id:
            reason = Waiting(
                "queue_order",
                f"behind earlier or higher-priority rollouts of {_pool_name(key)}",
            )
        if reason is None:
            reason = Waiting("dispatching", "it starts as soon as the scheduler gets to it")
        return reason.describe()

    def _pool_reason(self, key: PoolKey, busy: int, limit: int) -> Waiting | None:
        if busy < limit:
            return None
        if key[1] is None:
            return Waiting(
                "pool_concurrency",
                f"ad-hoc rollouts run {limit} at a time ({busy} running); put them in a pool "
                "with a higher concurrency to run more",
            )
        return Waiting(
            "pool_concurrency",
            f"pool {key[1]!r} runs {busy} of its concurrency {limit}; raise it with "
            f"envpools pools update {key[1]} --concurrency N",
        )

    def queue_report(self, org_id: str) -> dict[PoolKey, dict[str, Any]]:
        """Per pool of ``org_id`` with a queue: why its next rollout waits."""
        with self._cond:
            keys = [k for k in self._queues if k[0] == org_id]
            heads = {k: self._head(k) for k in keys}
        found: dict[PoolKey, dict[str, Any]] = {}
        for key, head in heads.items():
            if head is not None:
                found[key] = {"next": head.rollout_id, "waiting": self.waiting(head.rollout_id)}
        return found

    def describe(self) -> dict[str, Any]:
        with self._cond:
            used = {
                "running": self._used.running,
                "cpus": round(self._used.cpus, 3),
                "memory_mb": self._used.memory_mb,
            }
            queued = len(self._queued)
        return {
            **self.executor.describe(),
            "reserved": used,
            "queued": queued,
            "dispatch": self.stats.describe(),
        }

    def refusal(self, reservation: Reservation, asked_memory_mb: int | None) -> str | None:
        return self.executor.capacity().refusal(reservation, asked_memory_mb)

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
            self._forget(rollout_id)
            self.ctx.publish(
                rollout_id,
                "lifecycle",
                {"status": "cancelled", "previous": "queued", "error": doc["error"]},
            )
            return doc
        if doc["status"] in TERMINAL_STATUSES:
            return doc
        if not self.executor.cancel(rollout_id):
            self._end_orphan(rollout_id)
        return store.get_rollout(rollout_id) or doc

    def _end_orphan(self, rollout_id: str, outcome: Outcome | None = None) -> None:
        """An active rollout with no trial (it failed to start, or its trial was lost):
        end it here. Under the lock no trial can take it; a trial that had it ended it
        before letting go, so the store (or the ends kept in memory) shows that end."""
        outcome = outcome or Outcome(
            "cancelled", {"code": "cancelled", "message": "cancelled by request"}
        )
        with self._cond:
            if rollout_id in self._running or self.ctx.ends.pending(rollout_id) is not None:
                return  # its trial is there (or just ended)
            doc = self.ctx.store.get_rollout(rollout_id)
            if doc is None or doc["status"] not in ACTIVE_STATUSES:
                return
            self.ctx.ends.end(
                rollout_id,
                {"status": outcome.status, "finished_at": now_iso(), "error": outcome.error},
                {"status": outcome.status, "previous": doc["status"], "error": outcome.error},
                fallback=doc,
            )


def _pool_name(key: PoolKey) -> str:
    return f"pool {key[1]!r}" if key[1] is not None else "ad-hoc rollouts"
