"""What a job runs: its tasks, agents (with models) and attempts, in a stable order.

A job file (``--from-file job.yaml|json``) has the schema of ``JobFile``; flags given on
the command line override its values. Trials are ordered attempt by attempt (every
task x agent once, then again), so that a job stopped halfway has a fair sample.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AgentChoice",
    "LocalTask",
    "PlanError",
    "Trial",
    "check_task_files",
    "discover_tasks",
    "is_harbor_task",
    "parse_agent",
    "select_tasks",
    "trials",
]


class PlanError(ValueError):
    """The job cannot be planned as given (bad folder, agent, glob, file)."""


@dataclass(frozen=True, order=True)
class AgentChoice:
    harness: str
    model: str | None = None

    @property
    def label(self) -> str:
        return f"{self.harness}:{self.model}" if self.model else self.harness

    def to_dict(self) -> dict[str, Any]:
        return {"harness": self.harness, "model": self.model}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentChoice:
        return cls(str(data["harness"]), data.get("model") or None)


def parse_agent(text: str) -> AgentChoice:
    """``AGENT`` or ``AGENT:MODEL`` (the model may itself hold colons)."""
    harness, colon, model = text.strip().partition(":")
    harness, model = harness.strip(), model.strip()
    if not harness or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", harness):
        raise PlanError(f"--agent expects AGENT or AGENT:MODEL, got {text!r}")
    if colon and not model:  # 'codex:' is a model left out, not the agent's default model
        raise PlanError(f"--agent {text!r} names no model after ':' (AGENT or AGENT:MODEL)")
    return AgentChoice(harness, model or None)


@dataclass(frozen=True)
class LocalTask:
    task_id: str
    path: Path


def is_harbor_task(path: Path) -> bool:
    return (path / "instruction.md").is_file() and (path / "tests" / "test.sh").is_file()


def discover_tasks(path: Path) -> tuple[list[LocalTask], list[str]]:
    """(tasks, skipped folder names): ``path`` is one Harbor task or a folder of them."""
    root = path.expanduser()
    if not root.is_dir():
        raise PlanError(f"{path}: not a directory")
    root = root.resolve()
    if is_harbor_task(root):
        return [LocalTask(root.name, root)], []
    tasks, skipped = [], []
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if is_harbor_task(child):
            tasks.append(LocalTask(child.name, child))
        else:
            skipped.append(child.name)
    if not tasks:
        raise PlanError(
            f"{path}: no Harbor tasks found (a task folder holds instruction.md and "
            "tests/test.sh; give one task or a folder of them)"
        )
    return tasks, skipped


def check_task_files(task: LocalTask) -> None:
    """PlanError naming the folder when a task's ``task.toml`` does not parse: one broken
    task among many must be found without opening each."""
    import tomllib

    toml = task.path / "task.toml"
    if not toml.is_file():
        return
    try:
        tomllib.loads(toml.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(
            f"{toml}: not valid TOML ({exc}); fix it or --exclude {task.task_id}"
        ) from None
    except OSError as exc:
        raise PlanError(f"{toml}: {exc.strerror or exc}") from None


def select_tasks(
    task_ids: Iterable[str], include: Sequence[str], exclude: Sequence[str]
) -> list[str]:
    """Task ids matching any ``include`` glob (all when none) and no ``exclude`` glob."""
    chosen = [
        task_id
        for task_id in task_ids
        if (not include or any(fnmatch.fnmatchcase(task_id, g) for g in include))
        and not any(fnmatch.fnmatchcase(task_id, g) for g in exclude)
    ]
    if not chosen:
        globs = [f"--include {g}" for g in include] + [f"--exclude {g}" for g in exclude]
        raise PlanError("no task left after " + (" ".join(globs) or "selection"))
    return chosen


@dataclass(frozen=True)
class Trial:
    """One planned rollout: a task, an agent (and model), an attempt number from 1."""

    task_id: str
    agent: AgentChoice
    attempt: int

    @property
    def key(self) -> str:
        return f"{self.task_id}|{self.agent.label}|{self.attempt}"

    @property
    def filename(self) -> str:
        """A file name that is safe anywhere and still readable; the hash keeps it unique."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.task_id}__{self.agent.label}")[:80]
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:10]
        return f"{slug}__{self.attempt}__{digest}.json"

    def idempotency_key(self, job_id: str, generation: int = 0) -> str:
        """One key per create; ``generation`` counts the rollouts this trial replaced."""
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:32]
        return f"envpools-job-{job_id}-{digest}" + (f"-r{generation}" if generation else "")


def trials(
    task_ids: Sequence[str], agents: Sequence[AgentChoice], attempts: int
) -> Iterator[Trial]:
    for attempt in range(1, attempts + 1):
        for task_id in task_ids:
            for agent in agents:
                yield Trial(task_id, agent, attempt)
