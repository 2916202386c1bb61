"""The local executor: each trial in a thread of the backend, on this machine."""

from __future__ import annotations

import logging
import threading
from typing import Any

from envpools_cli.server.context import ServerContext
from envpools_cli.server.scheduling.admission import MachineCapacity
from envpools_cli.server.scheduling.executor import Executor
from envpools_cli.server.scheduling.memory import release_freed_memory
from envpools_cli.server.scheduling.reporting import StoreReporter
from envpools_cli.server.trial.reporter import TrialInput
from envpools_cli.server.trial.runner import Outcome, RolloutRunner, runner_lost

__all__ = ["LocalExecutor"]

log = logging.getLogger("envpools.server.executor")


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, ctx: ServerContext) -> None:
        super().__init__()
        self.ctx = ctx
        settings = ctx.settings
        self._capacity = MachineCapacity(
            cpu_overcommit=settings.cpu_overcommit,
            memory_fraction=settings.memory_fraction,
            max_running=settings.max_running,
        )
        self._lock = threading.Lock()
        self._runners: dict[str, RolloutRunner] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.node = ctx.site.node

    def capacity(self) -> MachineCapacity:
        return self._capacity

    def start(self, trial: TrialInput) -> None:
        rollout_id = trial.rollout_id
        reporter = StoreReporter(self.ctx, rollout_id, self.ctx.writer)
        runner = RolloutRunner(trial, self.ctx.site, reporter)
        thread = threading.Thread(
            target=self._work, args=(runner,), name=f"rollout-{rollout_id}", daemon=True
        )
        with self._lock:
            self._runners[rollout_id] = runner
            self._threads[rollout_id] = thread
        thread.start()

    def _work(self, runner: RolloutRunner) -> None:
        try:
            runner.run()
        except BaseException as exc:
            log.exception("rollout %s: its runner failed", runner.rollout_id)
            runner.end(runner_lost(f"{type(exc).__name__}: {exc}"))
        finally:
            with self._lock:
                if self._runners.get(runner.rollout_id) is runner:
                    self._runners.pop(runner.rollout_id, None)
                    self._threads.pop(runner.rollout_id, None)
                idle = not self._runners
            self._ended(runner.rollout_id)
            # This thread's SQLite connection goes now rather than whenever the thread
            # object is collected, and what the rollout freed goes back (memory.py).
            self.ctx.store.close()
            release_freed_memory(idle=idle)

    def reap(self) -> None:
        with self._lock:
            dead = [
                (rollout_id, runner)
                for rollout_id, runner in self._runners.items()
                if (thread := self._threads.get(rollout_id)) is not None
                and thread.ident is not None  # started
                and not thread.is_alive()
            ]
        for rollout_id, runner in dead:
            runner.end(runner_lost("its thread stopped without ending it"))
            with self._lock:
                if self._runners.get(rollout_id) is runner:
                    self._runners.pop(rollout_id, None)
                    self._threads.pop(rollout_id, None)
            self._ended(rollout_id)

    def cancel(self, rollout_id: str) -> bool:
        with self._lock:
            runner = self._runners.get(rollout_id)
            thread = self._threads.get(rollout_id)
        if runner is None:
            return False
        grace = self.ctx.settings.cancel_grace_sec
        runner.cancel.set()
        if thread is not None:
            thread.join(timeout=grace)
        if not runner.ended:
            # The runner did not get there in time (a stuck step): end it regardless.
            # Its thread may still finish its step, but can no longer change the rollout.
            runner.end(
                Outcome(
                    "cancelled",
                    {
                        "code": "cancelled",
                        "message": "cancelled by request; it did not stop within "
                        f"{grace:g}s and was ended regardless",
                    },
                )
            )
            with self._lock:
                if self._runners.get(rollout_id) is runner:
                    self._runners.pop(rollout_id, None)
                    self._threads.pop(rollout_id, None)
            self._ended(rollout_id)
        return True

    def stop(self, timeout: float) -> None:
        with self._lock:
            runners = list(self._runners.values())
            threads = list(self._threads.values())
        for runner in runners:
            runner.shutting_down = True
            runner.cancel.set()
        for thread in threads:
            thread.join(timeout)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            running = len(self._runners)
        return {
            "name": self.name,
            "capacity": self._capacity.describe(),
            "nodes": [{**self.node, "alive": True, "running": running}],
        }

    def node_of(self, rollout_id: str) -> str | None:
        with self._lock:
            return self.node["name"] if rollout_id in self._runners else None
