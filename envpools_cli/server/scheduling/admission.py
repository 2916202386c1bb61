"""Admission by resources: what a rollout reserves and what a machine can give at once.

A rollout reserves the ``cpus`` and ``memory_mb`` its task asks for (``task.toml``
``[environment]``, overridden by the pool task's ``resources``), and a few open files.
A machine's capacity is its cores times a CPU overcommit (agents mostly wait on their
LLM provider, so a core carries several), a fraction of its memory, and its open-files
limit; ``max_running`` caps the count on top when set. A rollout that could never fit
is refused when it is created; one that does not fit now waits in the queue, and says
which of these it waits for.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envpools_cli.server.sandbox.limits import FILES_PER_ROLLOUT, FILES_RESERVED, asked_resources

__all__ = [
    "DEFAULT_CPUS",
    "DEFAULT_MEMORY_MB",
    "FILES_PER_ROLLOUT",
    "FILES_RESERVED",
    "MachineCapacity",
    "Reservation",
    "Usage",
    "Waiting",
    "machine_memory_mb",
    "reservation_for",
    "usable_cores",
]

DEFAULT_CPUS = 1.0
"""What a task that names no ``cpus`` reserves (Harbor's default)."""
DEFAULT_MEMORY_MB = 512
"""What a task that names no ``memory_mb`` reserves: agent CLIs use far less than the
2 GB each sandbox process may take (``Limits.memory_mb``), and mostly wait."""


@dataclass(frozen=True)
class Reservation:
    """What one rollout holds while it runs."""

    cpus: float = DEFAULT_CPUS
    memory_mb: int = DEFAULT_MEMORY_MB

    def describe(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory_mb": self.memory_mb}

    @classmethod
    def from_doc(cls, value: Any) -> Reservation:
        """A rollout document's ``reservation`` (older rollouts have none: the defaults)."""
        if not isinstance(value, dict):
            return cls()
        cpus: Any = value.get("cpus")
        memory: Any = value.get("memory_mb")
        return cls(
            cpus=float(cpus) if _positive(cpus) else DEFAULT_CPUS,
            memory_mb=int(memory) if _positive(memory) else DEFAULT_MEMORY_MB,
        )


def reservation_for(
    *sources: Mapping[str, Any] | None,
    max_memory_mb: int,
    agent_cpus: float | None = None,
    agent_memory_mb: int | None = None,
) -> tuple[Reservation, int | None]:
    """What a rollout whose task asks ``sources`` reserves, and the memory it asked for.

    The reservation's memory is what the sandbox may get (``max_memory_mb``, the backend's
    per-sandbox ceiling); the ask is kept to refuse a task no machine here could hold.
    The agent's own needs (``agent_*``: its CLI runs in the task's sandbox) are a floor:
    Harbor tasks mostly say ``cpus = 1``, which would let a 2-core machine start 16
    opencode CLIs at once (each burns ~15 s of CPU to start) and time them all out.
    """
    asked = asked_resources(*sources)
    memory = asked.get("memory_mb")
    cpus = max(asked.get("cpus", DEFAULT_CPUS), agent_cpus or 0.0)
    held = min(int(memory), max_memory_mb) if memory else DEFAULT_MEMORY_MB
    held = max(held, min(agent_memory_mb or 0, max_memory_mb))
    return Reservation(cpus=cpus, memory_mb=held), int(memory) if memory else None


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@dataclass
class Usage:
    """What the running rollouts hold together."""

    running: int = 0
    cpus: float = 0.0
    memory_mb: int = 0

    def add(self, reservation: Reservation) -> None:
        self.running += 1
        self.cpus += reservation.cpus
        self.memory_mb += reservation.memory_mb

    def remove(self, reservation: Reservation) -> None:
        self.running = max(0, self.running - 1)
        self.cpus = max(0.0, self.cpus - reservation.cpus)
        self.memory_mb = max(0, self.memory_mb - reservation.memory_mb)


@dataclass(frozen=True)
class Waiting:
    """Why a queued rollout does not start yet: ``code`` for scripts, ``message`` for people."""

    code: str
    message: str

    def describe(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def machine_memory_mb() -> int:
    """Physical memory, or the cgroup's limit when that is lower (a container, a CI job)."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):
        text = open("/sys/fs/cgroup/memory.max").read().strip()  # noqa: SIM115
        if text.isdigit():
            total = min(total, int(text))
    return max(1, total // (1024 * 1024))


def open_files_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass
class MachineCapacity:
    """One machine's room for rollouts (the local executor's capacity)."""

    cpu_overcommit: float
    memory_fraction: float
    max_running: int | None = None
    cores: int = field(default_factory=usable_cores)
    memory_total_mb: int = field(default_factory=machine_memory_mb)

    @property
    def cpus(self) -> float:
        return self.cores * self.cpu_overcommit

    @property
    def memory_mb(self) -> int:
        return int(self.memory_total_mb * self.memory_fraction)

    @property
    def open_files(self) -> int:
        """Rollouts the open-files limit allows (read now: it may be raised at start)."""
        return max(1, (open_files_limit() - FILES_RESERVED) // FILES_PER_ROLLOUT)

    def refusal(self, wanted: Reservation, asked_memory_mb: int | None = None) -> str | None:
        """Why a rollout asking this could never start here, or None."""
        memory = max(wanted.memory_mb, asked_memory_mb or 0)
        if memory > self.memory_mb:
            return (
                f"the task asks for memory_mb {memory}, more than this machine gives "
                f"rollouts ({self.memory_mb} MB: {self.memory_fraction:.0%} of "
                f"{self.memory_total_mb} MB); lower [environment] memory_mb in its task.toml "
                "(or the pool task's resources), or run it on a bigger machine or a cluster "
                "(envpools local up --executor ray)"
            )
        if wanted.cpus > self.cpus:
            return (
                f"the task asks for cpus {wanted.cpus:g}, more than this machine gives "
                f"rollouts ({self.cores} cores x CPU overcommit {self.cpu_overcommit:g} = "
                f"{self.cpus:g}); lower [environment] cpus, or start the backend with a "
                "higher --cpu-overcommit"
            )
        return None

    def waiting(self, wanted: Reservation, used: Usage) -> Waiting | None:
        """What keeps a rollout asking ``wanted`` from starting now, or None."""
        if self.max_running is not None and used.running >= self.max_running:
            return Waiting(
                "max_running",
                f"the backend runs at most {self.max_running} rollouts at once "
                f"(--max-running); {used.running} are running",
            )
        if used.running >= self.open_files:
            return Waiting(
                "open_files",
                f"the open-files limit ({open_files_limit()}) allows {self.open_files} "
                f"running rollouts; raise it (ulimit -n) before starting the backend",
            )
        if used.cpus + wanted.cpus > self.cpus + 1e-9:
            return Waiting(
                "machine_cpus",
                f"machine capacity: {used.cpus:g} of {self.cpus:g} cpus reserved "
                f"({self.cores} cores x CPU overcommit {self.cpu_overcommit:g}); this "
                f"rollout needs {wanted.cpus:g}",
            )
        if used.memory_mb + wanted.memory_mb > self.memory_mb:
            return Waiting(
                "machine_memory",
                f"memory: {used.memory_mb} of {self.memory_mb} MB reserved "
                f"({self.memory_fraction:.0%} of {self.memory_total_mb} MB); this rollout "
                f"needs {wanted.memory_mb} MB",
            )
        return None

    def runs_at_once(self, wanted: Reservation = Reservation()) -> tuple[int, str]:
        """How many rollouts asking ``wanted`` run at once here, and what limits them."""
        bounds = [
            (int(self.cpus / wanted.cpus + 1e-9), "cpus"),
            (self.memory_mb // max(1, wanted.memory_mb), "memory"),
            (self.open_files, "open_files"),
        ]
        if self.max_running is not None:
            bounds.append((self.max_running, "max_running"))
        count, limit = min(bounds)
        return max(0, count), limit

    def describe(self) -> dict[str, Any]:
        count, limit = self.runs_at_once()
        return {
            "cores": self.cores,
            "cpu_overcommit": self.cpu_overcommit,
            "cpus": self.cpus,
            "memory_total_mb": self.memory_total_mb,
            "memory_fraction": self.memory_fraction,
            "memory_mb": self.memory_mb,
            "open_files_limit": open_files_limit(),
            "open_files_rollouts": self.open_files,
            "max_running": self.max_running,
            "runs_at_once": count,
            "limited_by": limit,
            "default_reservation": Reservation().describe(),
        }
