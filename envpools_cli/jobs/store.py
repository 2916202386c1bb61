"""A job on disk: a small manifest plus one record per rollout, each written atomically.

    <data dir>/jobs/<job id>/
        job.json              the manifest: what to run, where, with which settings
        state.json            finished / cancelled, once that happens
        run.lock              held (flock) by the process running the job
        trials/<trial>.json   {"trial", "rollout_id", "launched_at", "result"}

A trial's record is written when its rollout is created (so a resumed job follows that
rollout instead of starting another) and again with its result when it ends. Every
write goes to a temporary file that is fsynced and renamed over the old one, and the
folder is fsynced too: after a crash or a reboot a record is either whole or absent.
Secrets are never stored here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envpools_cli import paths
from envpools_cli.error_codes import error_kind, is_transient
from envpools_cli.jobs.plan import AgentChoice, Trial, trials

__all__ = [
    "Job",
    "JobBusy",
    "JobNotFound",
    "JobStore",
    "Record",
    "Result",
    "now_iso",
    "parse_time",
    "write_json_atomic",
]

SCHEMA = 1


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1, sort_keys=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        # Only a write that never finished could leave this; treat it as absent.
        return None


class JobNotFound(LookupError):
    pass


class JobBusy(RuntimeError):
    """Another process is running this job."""


@dataclass
class Result:
    """How one rollout ended, with the figures the result table is built from."""

    task_id: str
    agent: str
    model: str | None
    attempt: int
    rollout_id: str | None
    status: str
    reward: float | None = None
    rewards: dict[str, float] | None = None
    error: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_sec: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = 0.0
    """None when the cost is unknown (tokens of a model nobody priced), never a made-up 0."""
    model_used: str | None = None
    """The model the agent reported using (``model`` is the one asked for, or None)."""
    unpriced_models: list[str] = field(default_factory=list)
    recorded_at: str = field(default_factory=now_iso)

    @classmethod
    def from_rollout(
        cls, trial: Trial, doc: dict[str, Any], usage: dict[str, Any] | None
    ) -> Result:
        usage = usage or {}
        reward = doc.get("reward_primary")
        duration = _number(usage.get("wall_time_sec"))
        if duration is None:
            started, finished = (
                parse_time(doc.get("started_at")),
                parse_time(doc.get("finished_at")),
            )
            duration = (finished - started).total_seconds() if started and finished else None
        error = doc.get("error")
        rewards = doc.get("rewards")
        unpriced = [str(m) for m in usage.get("unpriced_models") or [] if m]
        tokens = _int(usage.get("llm_input_tokens")) + _int(usage.get("llm_output_tokens"))
        cost = _number(usage.get("cost_usd"))
        if cost is None and not unpriced and not tokens:
            cost = 0.0  # nothing was spent that could have a price
        agent = doc.get("agent")
        agent = agent if isinstance(agent, dict) else {}
        used = usage.get("model_id") or agent.get("model_id") or trial.agent.model
        return cls(
            task_id=trial.task_id,
            agent=trial.agent.harness,
            model=trial.agent.model,
            attempt=trial.attempt,
            rollout_id=str(doc.get("rollout_id") or doc.get("trial_id") or "") or None,
            status=str(doc.get("status", "")).lower(),
            reward=_number(reward),
            rewards=rewards if isinstance(rewards, dict) else None,
            error=error if isinstance(error, dict) else None,
            created_at=doc.get("created_at"),
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
            duration_sec=duration,
            input_tokens=_int(usage.get("llm_input_tokens")),
            output_tokens=_int(usage.get("llm_output_tokens")),
            cache_tokens=_int(usage.get("llm_cache_tokens")),
            cost_usd=None if unpriced else cost,
            model_used=str(used) if used else None,
            unpriced_models=unpriced,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def agent_label(self) -> str:
        return AgentChoice(self.agent, self.model).label

    @property
    def error_kind(self) -> str | None:
        """verifier, provider, infrastructure, setup or agent; None when no error."""
        return error_kind(self.status, self.error)

    @property
    def transient_error(self) -> bool:
        return is_transient(self.status, self.error)


def _number(value: Any) -> float | None:
    """A finite JSON number as a float (booleans and NaN are not numbers here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


def _int(value: Any) -> int:
    number = _number(value)
    return 0 if number is None else int(number)


@dataclass
class Record:
    trial: Trial
    rollout_id: str | None = None
    launched_at: str | None = None
    result: Result | None = None
    replaced: list[str] = field(default_factory=list)
    """Rollouts of this trial that ended in ``error`` and were run again on resume."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "key": self.trial.key,
            "trial": {
                "task_id": self.trial.task_id,
                "agent": self.trial.agent.to_dict(),
                "attempt": self.trial.attempt,
            },
            "rollout_id": self.rollout_id,
            "launched_at": self.launched_at,
            "result": self.result.to_dict() if self.result else None,
            "replaced": list(self.replaced),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        raw = data["trial"]
        trial = Trial(str(raw["task_id"]), AgentChoice.from_dict(raw["agent"]), int(raw["attempt"]))
        result = data.get("result")
        return cls(
            trial=trial,
            rollout_id=data.get("rollout_id"),
            launched_at=data.get("launched_at"),
            result=Result.from_dict(result) if isinstance(result, dict) else None,
            replaced=[str(r) for r in data.get("replaced") or []],
        )


@dataclass
class Job:
    """The manifest: everything needed to run, resume and summarise a job (no secrets)."""

    id: str
    name: str
    created_at: str
    backend_base: str
    api_version: str | None
    profile: str | None
    pool_id: str
    pool_created: bool
    dataset: str
    task_ids: list[str]
    task_paths: dict[str, str]
    agents: list[AgentChoice]
    attempts: int
    concurrency: int
    timeouts: dict[str, int]
    pass_reward: float = 1.0
    source: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def total(self) -> int:
        return len(self.task_ids) * len(self.agents) * self.attempts

    def trials(self) -> list[Trial]:
        return list(trials(self.task_ids, self.agents, self.attempts))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("folder")
        data["agents"] = [a.to_dict() for a in self.agents]
        return {"schema": SCHEMA, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path | None = None) -> Job:
        known = set(cls.__dataclass_fields__) - {"folder", "agents"}
        job = cls(
            **{k: v for k, v in data.items() if k in known},
            agents=[AgentChoice.from_dict(a) for a in data.get("agents", [])],
        )
        job.folder = folder
        return job


def new_job_id() -> str:
    return "job-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class JobStore:
    """Jobs under ``root`` (default: the data dir's ``jobs`` folder)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.data_dir() / "jobs"

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    # --- jobs -------------------------------------------------------------------------

    def create(self, job: Job) -> Job:
        folder = self.folder(job.id)
        (folder / "trials").mkdir(parents=True, exist_ok=False)
        job.folder = folder
        write_json_atomic(folder / "job.json", job.to_dict())
        return job

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            (p.name for p in self.root.iterdir() if (p / "job.json").is_file()), reverse=True
        )

    def load(self, job_id: str) -> Job:
        folder = self.folder(job_id)
        data = _read_json(folder / "job.json") if "/" not in job_id else None
        if not isinstance(data, dict):
            raise JobNotFound(job_id)
        return Job.from_dict(data, folder)

    def resolve(self, ref: str) -> Job:
        """A job by id, unique id prefix, or name (the newest job of that name)."""
        ids = self.ids()
        if ref in ids:
            return self.load(ref)
        prefixed = [i for i in ids if i.startswith(ref)] if ref else []
        if len(prefixed) == 1:
            return self.load(prefixed[0])
        named = [job for job in (self.load(i) for i in ids) if job.name == ref]
        if named:
            return named[0]
        if len(prefixed) > 1:
            raise JobNotFound(f"{ref!r} matches {len(prefixed)} jobs: {', '.join(prefixed[:5])}")
        raise JobNotFound(ref)

    def delete(self, job: Job) -> None:
        shutil.rmtree(self.folder(job.id))

    # --- records ----------------------------------------------------------------------

    def records(self, job: Job) -> dict[str, Record]:
        """Records by trial key; unreadable or foreign files are ignored."""
        out: dict[str, Record] = {}
        folder = self.folder(job.id) / "trials"
        if not folder.is_dir():
            return out
        for path in folder.glob("*.json"):
            data = _read_json(path)
            if not isinstance(data, dict):
                continue
            try:
                record = Record.from_dict(data)
            except (KeyError, TypeError, ValueError):
                continue
            out[record.trial.key] = record
        return out

    def results(self, job: Job) -> list[Result]:
        planned = {t.key for t in job.trials()}
        return [r.result for key, r in self.records(job).items() if key in planned and r.result]

    def save(self, job: Job, record: Record) -> None:
        write_json_atomic(self.folder(job.id) / "trials" / record.trial.filename, record.to_dict())

    # --- state ------------------------------------------------------------------------

    def state(self, job: Job) -> dict[str, Any]:
        data = _read_json(self.folder(job.id) / "state.json")
        return data if isinstance(data, dict) else {}

    def set_state(self, job: Job, status: str, **extra: Any) -> None:
        write_json_atomic(
            self.folder(job.id) / "state.json", {"status": status, "at": now_iso(), **extra}
        )

    def clear_state(self, job: Job) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder(job.id) / "state.json").unlink()

    def running_pid(self, job: Job) -> int | None:
        """The pid of the process running this job, if one is (its lock is held)."""
        path = self.folder(job.id) / "run.lock"
        try:
            handle = path.open("r+")
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    @contextlib.contextmanager
    def lock(self, job: Job) -> Iterator[None]:
        """Hold the job's run lock; the kernel releases it if this process dies."""
        path = self.folder(job.id) / "run.lock"
        handle = path.open("a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise JobBusy(handle.read().strip() or "?") from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()

    def status(self, job: Job, records: dict[str, Record] | None = None) -> str:
        """running, finished, cancelled or interrupted (resumable)."""
        if self.running_pid(job) is not None:
            return "running"
        state = self.state(job).get("status")
        if state == "cancelled":
            return "cancelled"
        records = self.records(job) if records is None else records
        done = sum(1 for t in job.trials() if (r := records.get(t.key)) and r.result)
        if done >= job.total:
            return "finished"
        return "interrupted"
