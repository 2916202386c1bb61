"""The executor seam: where trials run, behind one interface.

The scheduler decides *which* queued rollout runs next (pool concurrency, priority,
admission by resources) and claims it; an executor decides *where* and runs it: the
local one in a thread of this process (``local.py``), the Ray one as a task on a cluster
node (``ray.py``). Either way the trial reports through a ``TrialReporter`` and the
backend stays the only writer of the database; the executor says when a trial is over
(``ended``) so that the scheduler gives its reservation back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from envpools_cli.server.scheduling.admission import Reservation, Usage, Waiting
from envpools_cli.server.trial.reporter import TrialInput

__all__ = ["Capacity", "Executor"]


class Capacity(Protocol):
    """The room an executor has for rollouts (one machine, or a cluster's nodes)."""

    def refusal(self, wanted: Reservation, asked_memory_mb: int | None = None) -> str | None:
        """Why a rollout asking this could never start, or None."""
        ...

    def waiting(self, wanted: Reservation, used: Usage) -> Waiting | None:
        """What keeps a rollout asking ``wanted`` from starting now, or None."""
        ...

    def runs_at_once(self, wanted: Reservation = ...) -> tuple[int, str]:
        """How many default-sized rollouts run at once, and what limits that number."""
        ...

    def describe(self) -> dict[str, Any]: ...


class Executor(ABC):
    """Runs claimed trials; one instance per backend."""

    name: str = "executor"

    def __init__(self) -> None:
        self._ended: Callable[[str], None] = lambda _rollout_id: None

    def bind(self, ended: Callable[[str], None]) -> None:
        """``ended(rollout_id)`` is called once a trial is over and its status is final."""
        self._ended = ended

    @abstractmethod
    def capacity(self) -> Capacity: ...

    @abstractmethod
    def start(self, trial: TrialInput) -> None:
        """Run a claimed (``starting``) rollout's trial; return at once."""

    @abstractmethod
    def cancel(self, rollout_id: str) -> bool:
        """Stop a trial running here and end it ``cancelled`` (within the cancel grace);
        False when it does not run here."""

    @abstractmethod
    def stop(self, timeout: float) -> None:
        """The backend is stopping: end every trial (``backend_restarted``) and wait."""

    def reap(self) -> None:
        """End the trials that stopped without ending their rollout (``runner_lost``);
        the scheduler asks every few seconds. Nothing to do where trials cannot die
        unseen (Ray reports a lost task as an error of its own)."""
        return None

    def describe(self) -> dict[str, Any]:
        """The executor, its nodes and what runs where (capabilities, queue status)."""
        return {"name": self.name, "capacity": self.capacity().describe()}

    def node_of(self, rollout_id: str) -> str | None:
        """The name of the node a running trial is on (None: unknown or not running)."""
        return None
