"""The job file (``jobs run --from-file job.yaml``) and how flags override it.

    name: nightly-py            # default: the tasks folder's (or pool's) name
    tasks: ./tasks              # a Harbor task folder or a folder of them (relative to this file)
    # pool: coding              # ... or the tasks of an existing pool
    dataset: my-suite           # task_ref.dataset of every rollout (default: the name above)
    include: ["fix-*"]          # task id globs; exclude: [...]
    agents:                     # AGENT or AGENT:MODEL, or {harness, model}
      - oracle
      - codex:gpt-5.1-codex-mini
    attempts: 3                 # per task x agent (the k of pass@k)
    concurrency: 4              # rollouts in flight at once (client side; pools may cap more)
    timeouts: {agent_sec: 600, verifier_sec: 300}
    timeout_sec: 3600           # stop following after this (exit 3; resume later)
    pass_reward: 1.0            # a rollout passes when it succeeded with reward >= this
    min_pass_rate: 0.8          # exit 5 when an agent/model's pass rate is below this
    junit: report.xml

Unknown keys are an error, so a typo never silently changes an eval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from envpools_cli.jobs.plan import AgentChoice, PlanError, parse_agent

__all__ = ["DEFAULT_CONCURRENCY", "JobFile", "JobSpec", "load_job_file", "resolve_spec"]

DEFAULT_CONCURRENCY = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AgentEntry(_Strict):
    harness: str = Field(validation_alias=AliasChoices("harness", "agent"))
    model: str | None = Field(default=None, validation_alias=AliasChoices("model", "model_id"))


class Timeouts(_Strict):
    agent_sec: int | None = Field(default=None, gt=0)
    verifier_sec: int | None = Field(default=None, gt=0)
    build_sec: int | None = Field(default=None, gt=0)


class JobFile(_Strict):
    name: str | None = None
    tasks: str | None = None
    pool: str | None = None
    dataset: str | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    agents: list[str | AgentEntry] = Field(default_factory=list)
    attempts: int | None = Field(default=None, ge=1, le=10_000)
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    timeout_sec: float | None = Field(default=None, gt=0)
    pass_reward: float | None = None
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    junit: str | None = None


@dataclass
class JobSpec:
    """A job as asked for, flags over file over defaults; paths are absolute."""

    agents: list[AgentChoice]
    tasks_dir: Path | None = None
    pool: str | None = None
    name: str | None = None
    dataset: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    attempts: int = 1
    concurrency: int = DEFAULT_CONCURRENCY
    timeouts: dict[str, int] = field(default_factory=dict)
    timeout_sec: float | None = None
    pass_reward: float = 1.0
    min_pass_rate: float | None = None
    junit: Path | None = None


def load_job_file(document: Any, where: str) -> JobFile:
    if not isinstance(document, dict):
        raise PlanError(f"{where} must hold one job object (see 'envpools jobs run --help')")
    try:
        return JobFile.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'job'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise PlanError(f"{where}: " + "; ".join(problems)) from None


def resolve_spec(file: JobFile | None, base_dir: Path | None, flags: dict[str, Any]) -> JobSpec:
    """Merge: a flag given on the command line wins over the file, the file over defaults."""
    file = file or JobFile()
    base = base_dir or Path.cwd()

    def pick(name: str, from_file: Any) -> Any:
        value = flags.get(name)
        return value if value not in (None, [], ()) else from_file

    agents_raw: list[Any] = list(flags.get("agents") or []) or list(file.agents)
    agents: list[AgentChoice] = []
    for entry in agents_raw:
        if isinstance(entry, AgentEntry):
            choice = AgentChoice(entry.harness.strip(), (entry.model or "").strip() or None)
            parse_agent(choice.harness)  # the same rule for the harness name
        else:
            choice = parse_agent(str(entry))
        if choice not in agents:
            agents.append(choice)
    if not agents:
        raise PlanError("give at least one --agent AGENT[:MODEL] (or agents: in the job file)")

    tasks_flag = flags.get("tasks_dir")
    tasks_dir: Path | None
    if tasks_flag is not None:
        tasks_dir = Path(tasks_flag).expanduser()
    elif file.tasks:
        tasks_dir = (base / Path(file.tasks).expanduser()).resolve()
    else:
        tasks_dir = None
    pool = pick("pool", file.pool)
    if tasks_flag is not None and flags.get("pool"):
        raise PlanError("give --tasks DIR or --pool POOL, not both")
    if tasks_flag is not None:
        pool = None
    elif flags.get("pool"):
        tasks_dir = None
    if tasks_dir is None and not pool:
        raise PlanError("give the tasks: --tasks DIR (Harbor task folders) or --pool POOL")
    if tasks_dir is not None and pool:
        raise PlanError("the job file gives both tasks and pool; keep one")

    timeouts = {k: v for k, v in file.timeouts.model_dump().items() if v is not None}
    for key in ("agent_sec", "verifier_sec"):
        if flags.get(key) is not None:
            timeouts[key] = int(flags[key])
    min_pass_rate = pick("min_pass_rate", file.min_pass_rate)
    if min_pass_rate is not None and not 0 <= float(min_pass_rate) <= 1:
        raise PlanError("--min-pass-rate is a fraction between 0 and 1")
    pass_reward = pick("pass_reward", file.pass_reward)
    junit: Path | None = None
    if flags.get("junit") is not None:
        junit = Path(flags["junit"])
    elif file.junit:
        junit = base / file.junit
    return JobSpec(
        agents=agents,
        tasks_dir=tasks_dir,
        pool=pool,
        name=pick("name", file.name),
        dataset=pick("dataset", file.dataset),
        include=list(pick("include", file.include) or []),
        exclude=list(pick("exclude", file.exclude) or []),
        attempts=int(pick("attempts", file.attempts) or 1),
        concurrency=int(pick("concurrency", file.concurrency) or DEFAULT_CONCURRENCY),
        timeouts=timeouts,
        timeout_sec=pick("timeout_sec", file.timeout_sec),
        pass_reward=1.0 if pass_reward is None else float(pass_reward),
        min_pass_rate=None if min_pass_rate is None else float(min_pass_rate),
        junit=junit,
    )
