"""The Ray executor: each trial a Ray task on a cluster node; the backend stays in charge.

``envpools local up --executor ray --ray-address HOST:PORT`` (``pip install
'envpools[ray]'``). The backend is a Ray driver and the control plane: it queues, admits
and claims rollouts as always, and is the only writer of its database. Each trial is a
Ray task asking for the trial's cpus (divided by the CPU overcommit), its memory and one
unit of a custom resource every worker node offers (``sandbox_slot``: a node runs at most
that many sandboxes at once, and nodes without it, like a head kept for control, run
none). On its node the task makes that node's trial site (the sandbox driver the node
has) and runs the trial (``trial/remote.py``); its reports come back as a streaming
generator of numbered batches, applied in order and once each; artifact files come back
when it ends.

Cancelling asks the trial to stop through a small actor (``TrialControl``) that each
trial watches, so that it stops its sandbox and reports its end as it would here; one
that does not stop within the cancel grace has its worker killed (a bubblewrap sandbox
dies with it). A node that dies ends its running trials ``error``/``node_lost``, with
every event received kept; a trial lost before it started running is placed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ray
import ray.exceptions
import ray.util.scheduling_strategies

from envpools_cli.models import TERMINAL_STATUSES
from envpools_cli.server.context import ServerContext
from envpools_cli.server.scheduling.admission import Reservation, Usage, Waiting
from envpools_cli.server.scheduling.executor import Executor
from envpools_cli.server.scheduling.reporting import StoreReporter
from envpools_cli.server.state.frames import is_terminal
from envpools_cli.server.state.store import now_iso
from envpools_cli.server.trial.artifacts import ArtifactPathError, resolve_artifact
from envpools_cli.server.trial.remote import Record, node_site, run_on_node
from envpools_cli.server.trial.reporter import TrialInput

__all__ = ["ClusterCapacity", "RayExecutor"]

log = logging.getLogger("envpools.server.ray")

MIB = 1024 * 1024
REFRESH_SEC = 1.0
"""How often the nodes and their resources are read from the cluster."""
PLACEMENTS = 3
"""Placements of a trial whose node is lost before it starts running."""


# --- on the node -----------------------------------------------------------------------


class TrialControl:
    """The backend's word to its running trials: each waits on ``wait(rollout_id)``."""

    def __init__(self) -> None:
        self.flags: dict[str, asyncio.Event] = {}

    def _flag(self, rollout_id: str) -> asyncio.Event:
        return self.flags.setdefault(rollout_id, asyncio.Event())

    async def wait(self, rollout_id: str) -> bool:
        await self._flag(rollout_id).wait()
        return True

    async def cancel(self, rollout_id: str) -> None:
        self._flag(rollout_id).set()

    async def forget(self, rollout_id: str) -> None:
        flag = self.flags.pop(rollout_id, None)
        if flag is not None:
            flag.set()


def _this_node() -> dict[str, Any]:
    node_id = ray.get_runtime_context().get_node_id()
    found: dict[str, Any] = next((n for n in ray.nodes() if n.get("NodeID") == node_id), {})
    address = f"{found.get('NodeManagerAddress', '?')}:{found.get('NodeManagerPort', '?')}"
    host = found.get("NodeManagerHostname") or socket.gethostname()
    return {"node_id": node_id, "name": f"{host}-{node_id[:8]}", "address": address}


_node: dict[str, Any] = {}


def trial_task(trial: TrialInput, sandbox: str, control: Any) -> Any:
    """The body of a trial's Ray task (a generator of record batches)."""
    if not _node:
        _node.update(_this_node())
    site = node_site(sandbox, _node)
    asked = control.wait.remote(trial.rollout_id) if control is not None else None

    def cancelled() -> bool:
        nonlocal asked
        if asked is None:
            return False
        ready, _ = ray.wait([asked], timeout=0)
        if not ready:
            return False
        try:
            return bool(ray.get(ready[0]))
        except ray.exceptions.RayError:  # the control is gone: only a kill stops us now
            asked = None
            return False

    yield from run_on_node(trial, site, cancelled=cancelled)


# --- the cluster -----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    node_id: str
    name: str
    address: str
    alive: bool
    slots: float
    cpus: float
    memory_mb: int

    def describe(self, running: int) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "name": self.name,
            "address": self.address,
            "alive": self.alive,
            "resources": {
                "sandbox_slot": self.slots,
                "CPU": self.cpus,
                "memory_mb": self.memory_mb,
            },
            "running": running,
        }


def _read_nodes(resource: str) -> list[Node]:
    nodes = []
    for raw in ray.nodes():
        resources = raw.get("Resources") or {}
        node_id = str(raw.get("NodeID"))
        nodes.append(
            Node(
                node_id=node_id,
                name=f"{raw.get('NodeManagerHostname') or raw.get('NodeName')}-{node_id[:8]}",
                address=f"{raw.get('NodeManagerAddress')}:{raw.get('NodeManagerPort')}",
                alive=bool(raw.get("Alive")),
                slots=float(resources.get(resource, 0)),
                cpus=float(resources.get("CPU", 0)),
                memory_mb=int(resources.get("memory", 0) // MIB),
            )
        )
    return nodes


@dataclass
class ClusterCapacity:
    """The room of the cluster's live nodes that offer the sandbox resource."""

    resource: str
    cpu_overcommit: float
    max_running: int | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.alive and n.slots > 0]

    @property
    def slots(self) -> int:
        return int(sum(n.slots for n in self.workers))

    def refusal(self, wanted: Reservation, asked_memory_mb: int | None = None) -> str | None:
        workers = self.workers
        if not workers:  # none yet (starting up): the rollout waits for one
            return None
        memory = max(wanted.memory_mb, asked_memory_mb or 0)
        largest = max(n.memory_mb for n in workers)
        if memory > largest:
            return (
                f"the task asks for memory_mb {memory}, more than any node of the cluster "
                f"offers (the largest: {largest} MB); lower [environment] memory_mb or add a "
                "bigger node"
            )
        cpus = wanted.cpus / self.cpu_overcommit
        if cpus > max(n.cpus for n in workers):
            return (
                f"the task asks for cpus {wanted.cpus:g} ({cpus:g} after CPU overcommit "
                f"{self.cpu_overcommit:g}), more than any node of the cluster has"
            )
        return None

    def waiting(self, wanted: Reservation, used: Usage) -> Waiting | None:
        if self.max_running is not None and used.running >= self.max_running:
            return Waiting(
                "max_running",
                f"the backend runs at most {self.max_running} rollouts at once "
                f"(--max-running); {used.running} are running",
            )
        slots, workers = self.slots, len(self.workers)
        if not workers:
            return Waiting(
                "sandbox_slots",
                f"no live node of the Ray cluster offers the {self.resource!r} resource: "
                f"start worker nodes with --resources '{{\"{self.resource}\": N}}'",
            )
        if used.running >= slots:
            return Waiting(
                "sandbox_slots",
                f"all {slots} sandbox slots of the cluster's {workers} worker node(s) are busy",
            )
        return None

    def runs_at_once(self, wanted: Reservation = Reservation()) -> tuple[int, str]:
        if self.max_running is not None and self.max_running < self.slots:
            return self.max_running, "max_running"
        return self.slots, "sandbox_slots"

    def describe(self) -> dict[str, Any]:
        count, limit = self.runs_at_once()
        return {
            "nodes": len(self.workers),
            "sandbox_slots": self.slots,
            "resource": self.resource,
            "cpu_overcommit": self.cpu_overcommit,
            "max_running": self.max_running,
            "runs_at_once": count,
            "limited_by": limit,
            "default_reservation": Reservation().describe(),
        }


# --- the backend's side of one trial ----------------------------------------------------


def _lost(exc: BaseException) -> bool:
    """The task died with its worker or node (not an error of the trial's own code)."""
    lost = (
        ray.exceptions.NodeDiedError,
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.LocalRayletDiedError,
        ray.exceptions.ObjectLostError,
        ray.exceptions.RaySystemError,
    )
    cause = getattr(exc, "cause", None)
    return isinstance(exc, lost) or isinstance(cause, lost)


def _cancelled(exc: BaseException) -> bool:
    cause = getattr(exc, "cause", None)
    return isinstance(exc, ray.exceptions.TaskCancelledError) or isinstance(
        cause, ray.exceptions.TaskCancelledError
    )


class RayTrial:
    """One trial as the backend follows it: submits it, applies its records, ends it."""

    def __init__(self, executor: RayExecutor, trial: TrialInput) -> None:
        self.executor = executor
        self.ctx = executor.ctx
        self.input = trial
        self.rollout_id = trial.rollout_id
        self.reporter = StoreReporter(self.ctx, trial.rollout_id)
        self.reservation = Reservation.from_doc(trial.doc.get("reservation"))
        self.status = str(trial.doc.get("status") or "starting")
        self.applied = 0
        self.node: dict[str, Any] | None = None
        self.ended = False
        self.cancel_requested = False
        self.shutting_down = False
        self.placements = 0
        self.lock = threading.Lock()
        self.generator: Any = None
        self.thread = threading.Thread(
            target=self._follow, name=f"ray-{trial.rollout_id}", daemon=True
        )

    def start(self) -> None:
        self._submit()
        self.thread.start()

    def _submit(self) -> None:
        executor = self.executor
        self.placements += 1
        self.applied = 0
        self.node = None
        self.generator = executor.task.options(
            num_cpus=self.reservation.cpus / executor.settings.cpu_overcommit,
            memory=self.reservation.memory_mb * MIB,
            resources={executor.settings.ray_resource: 1},
            num_returns="streaming",
            max_retries=0,
            name=f"envpools-trial-{self.rollout_id}",
        ).remote(self.input, executor.settings.sandbox, executor.control)

    # --- records --------------------------------------------------------------------------

    def apply(self, batch: list[Record]) -> None:
        """Apply a batch in order, each record once (by number); nothing after the end."""
        with self.lock:
            if self.ended:
                return
            fresh = [r for r in batch if r[0] > self.applied]
            if not fresh:
                return
            files_only = all(kind in ("file", "end") for _, kind, _ in fresh)
            with contextlib.nullcontext() if files_only else self.ctx.store.tx():
                for number, kind, payload in fresh:
                    if kind == "end":
                        break  # written on its own, below: it must not be lost with a batch
                    self.applied = number
                    self._apply(kind, payload)
            for number, kind, payload in fresh:
                if kind == "end" and number > self.applied:
                    self.applied = number
                    changes, data, entries = payload
                    self.reporter.end(changes, data, entries, fallback={})
                    self.ended = True
                    return

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "node":
            self.node = dict(payload)
            self.reporter.update(node=self.node)
        elif kind == "update":
            self.status = str(payload.get("status") or self.status)
            self.reporter.update(**payload)
        elif kind == "event":
            event, data = payload
            self.reporter.event(event, data)
            if is_terminal(event, data):
                self.ended = True
        elif kind == "file":
            self._write(*payload)
        elif kind == "artifacts":
            self.reporter.artifacts(payload)

    def _write(self, path: str, offset: int, data: bytes) -> None:
        trial = self.ctx.trial_dir(self.rollout_id)
        try:
            _, target = resolve_artifact(trial, path)
        except ArtifactPathError:
            log.warning("rollout %s: node sent a file outside its trial: %r", self.rollout_id, path)
            return
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags | (os.O_TRUNC if offset == 0 else 0), 0o600)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def end(self, status: str, error: dict[str, Any]) -> bool:
        """End the rollout from the backend's side (the trial could not): once."""
        with self.lock:
            if self.ended:
                return False
            self.ended = True
            with self.ctx.store.tx():
                doc = self.ctx.store.get_rollout(self.rollout_id) or {}
                previous = doc.get("status", self.status)
                if previous in TERMINAL_STATUSES:
                    return False
                self.reporter.update(status=status, finished_at=now_iso(), error=error)
                self.reporter.event(
                    "lifecycle", {"status": status, "previous": previous, "error": error}
                )
        return True

    # --- following the task -----------------------------------------------------------------

    def _follow(self) -> None:
        try:
            while True:
                try:
                    for ref in self.generator:
                        self.apply(ray.get(ref))
                    break
                except Exception as exc:  # every way a Ray task can end
                    if not self._failed(exc):
                        break
            if not self.ended:
                self.end(
                    "error",
                    {
                        "code": "internal",
                        "message": f"the trial on node {self._node_name()} stopped without "
                        "a final status",
                    },
                )
        except Exception:
            log.exception("rollout %s: following its Ray task failed", self.rollout_id)
            self.end("error", {"code": "internal", "message": "following the trial failed"})
        finally:
            self.executor.finished(self)

    def _failed(self, exc: BaseException) -> bool:
        """Handle how the task ended; True when it was placed again (follow it again)."""
        if self.ended:
            return False
        if self.shutting_down:
            self.end(
                "error",
                {
                    "code": "backend_restarted",
                    "message": "the local backend stopped while this rollout was running; "
                    "it was not finished",
                },
            )
            return False
        if self.cancel_requested or _cancelled(exc):
            self.end("cancelled", {"code": "cancelled", "message": "cancelled by request"})
            return False
        if _lost(exc):
            before_running = self.status == "starting"
            if before_running and self.placements < PLACEMENTS:
                with self.lock:
                    self.ctx.publish(
                        self.rollout_id,
                        "lifecycle",
                        {
                            "status": "starting",
                            "message": f"node {self._node_name()} was lost before the trial "
                            "started; placing it on another node",
                        },
                    )
                self._submit()
                return True
            self.end(
                "error",
                {
                    "code": "node_lost",
                    "message": f"node {self._node_name()} was lost while this rollout was "
                    f"{self.status}; the events it sent before are kept",
                    "node": self.node,
                },
            )
            return False
        log.warning("rollout %s: its Ray task failed: %s", self.rollout_id, exc)
        self.end(
            "error",
            {"code": "internal", "message": f"the trial failed on its node: {str(exc)[:2000]}"},
        )
        return False

    def _node_name(self) -> str:
        return str((self.node or {}).get("name") or "(not placed yet)")


# --- the executor ------------------------------------------------------------------------


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, ctx: ServerContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.settings = ctx.settings
        if not ray.is_initialized():
            # ray.init makes SIGTERM exit at once; the server's own shutdown (which ends
            # the running rollouts) is what SIGTERM must start.
            previous = signal.getsignal(signal.SIGTERM)
            ray.init(
                address=self.settings.ray_address,
                namespace="envpools",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
        self.task: Any = ray.remote(trial_task)
        here = ray.get_runtime_context().get_node_id()
        strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(here, soft=True)
        self.control: Any = (
            ray.remote(TrialControl)
            .options(num_cpus=0, max_concurrency=100_000, scheduling_strategy=strategy)
            .remote()
        )
        self._capacity = ClusterCapacity(
            resource=self.settings.ray_resource,
            cpu_overcommit=self.settings.cpu_overcommit,
            max_running=self.settings.max_running,
            nodes=_read_nodes(self.settings.ray_resource),
        )
        self._lock = threading.Lock()
        self._trials: dict[str, RayTrial] = {}
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch_nodes, name="ray-nodes", daemon=True)
        self._monitor.start()

    def capacity(self) -> ClusterCapacity:
        return self._capacity

    def _watch_nodes(self) -> None:
        while not self._stopping.wait(REFRESH_SEC):
            with contextlib.suppress(Exception):  # the cluster busy or away for a moment
                self._capacity.nodes = _read_nodes(self.settings.ray_resource)

    def start(self, trial: TrialInput) -> None:
        follower = RayTrial(self, trial)
        with self._lock:
            self._trials[trial.rollout_id] = follower
        follower.start()

    def finished(self, follower: RayTrial) -> None:
        with self._lock:
            if self._trials.get(follower.rollout_id) is follower:
                del self._trials[follower.rollout_id]
        with contextlib.suppress(Exception):
            self.control.forget.remote(follower.rollout_id)
        self._ended(follower.rollout_id)

    def cancel(self, rollout_id: str) -> bool:
        with self._lock:
            follower = self._trials.get(rollout_id)
        if follower is None:
            return False
        follower.cancel_requested = True
        grace = self.settings.cancel_grace_sec
        if follower.node is None:  # not on a node yet: take it out of Ray's queue
            with contextlib.suppress(Exception):
                ray.cancel(follower.generator)
        else:
            self.control.cancel.remote(rollout_id)
        follower.thread.join(grace)
        if follower.thread.is_alive():
            with contextlib.suppress(Exception):
                ray.cancel(follower.generator, force=True)
            follower.end(
                "cancelled",
                {
                    "code": "cancelled",
                    "message": f"cancelled by request; it did not stop within {grace:g}s and "
                    "its worker was stopped",
                },
            )
            follower.thread.join(5)
        return True

    def stop(self, timeout: float) -> None:
        """The backend is stopping: its running rollouts end now (``backend_restarted``,
        as a restart would say), then their trials are told to stop their sandboxes."""
        self._stopping.set()
        with self._lock:
            followers = list(self._trials.values())
        for follower in followers:
            follower.shutting_down = True
            follower.end(
                "error",
                {
                    "code": "backend_restarted",
                    "message": "the local backend stopped while this rollout was running; "
                    "it was not finished",
                },
            )
            with contextlib.suppress(Exception):
                self.control.cancel.remote(follower.rollout_id)
        deadline = time.monotonic() + timeout
        for follower in followers:
            follower.thread.join(max(0.1, deadline - time.monotonic()))
            if follower.thread.is_alive():
                with contextlib.suppress(Exception):
                    ray.cancel(follower.generator, force=True)
        with contextlib.suppress(Exception):
            ray.shutdown()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            running: dict[str, int] = {}
            for follower in self._trials.values():
                node_id = str((follower.node or {}).get("node_id"))
                running[node_id] = running.get(node_id, 0) + 1
        return {
            "name": self.name,
            "address": self.settings.ray_address,
            "capacity": self._capacity.describe(),
            "nodes": [n.describe(running.get(n.node_id, 0)) for n in self._capacity.nodes],
            "unplaced": running.get("None", 0),
        }

    def node_of(self, rollout_id: str) -> str | None:
        with self._lock:
            follower = self._trials.get(rollout_id)
        return None if follower is None or follower.node is None else str(follower.node["name"])
