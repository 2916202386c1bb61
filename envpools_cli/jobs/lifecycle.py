"""Creating a job (its pool, tasks and manifest), cancelling, deleting and describing it."""

from __future__ import annotations

import contextlib
from typing import Any

from envpools_cli import client as ep
from envpools_cli.jobs.plan import (
    LocalTask,
    PlanError,
    Trial,
    check_task_files,
    discover_tasks,
    select_tasks,
)
from envpools_cli.jobs.run import rollout_request
from envpools_cli.jobs.spec import JobSpec
from envpools_cli.jobs.stats import JobStats, compute, is_attempt, passed
from envpools_cli.jobs.store import Job, JobStore, Record, Result, new_job_id, now_iso
from envpools_cli.models import RolloutStatus

__all__ = [
    "cancel_job",
    "concurrency_note",
    "create_job",
    "delete_job",
    "describe",
    "job_stats",
    "restore_pool",
    "rollout_rows",
]


def _conn_only(conn: dict[str, Any]) -> dict[str, Any]:
    return {k: conn[k] for k in ("backend_base", "api_key", "api_version", "session") if k in conn}


def create_job(
    spec: JobSpec,
    store: JobStore,
    conn: dict[str, Any],
    *,
    profile: str | None,
    warn: Any = None,
) -> Job:
    """Plan the job, check every agent with the backend, create its pool, write its manifest.

    Nothing is created when a check fails.
    """
    conn = _conn_only(conn)
    job_id = new_job_id()
    local: list[LocalTask] = []
    if spec.tasks_dir is not None:
        found, skipped = discover_tasks(spec.tasks_dir)
        if skipped and warn is not None:
            names = ", ".join(skipped)
            warn(f"skipped {len(skipped)} folder(s) that are not Harbor tasks: {names}")
        chosen = set(select_tasks([t.task_id for t in found], spec.include, spec.exclude))
        local = [t for t in found if t.task_id in chosen]
        for task in local:
            check_task_files(task)
        task_ids = [t.task_id for t in local]
        pool_id = job_id
        default_name = spec.tasks_dir.expanduser().resolve().name
    else:
        assert spec.pool is not None
        pool_tasks = ep.list_pool_tasks(spec.pool, **conn)
        ids = [str(t["task_id"]) for t in pool_tasks if t.get("task_id")]
        if not ids:
            raise PlanError(f"pool {spec.pool!r} has no tasks")
        task_ids = select_tasks(ids, spec.include, spec.exclude)
        pool_id = spec.pool
        default_name = spec.pool
    name = spec.name or default_name
    job = Job(
        id=job_id,
        name=name,
        created_at=now_iso(),
        backend_base=str(conn.get("backend_base") or ""),
        api_version=conn.get("api_version"),
        profile=profile,
        pool_id=pool_id,
        pool_created=spec.tasks_dir is not None,
        dataset=spec.dataset or name,
        task_ids=task_ids,
        task_paths={t.task_id: str(t.path) for t in local},
        agents=list(spec.agents),
        attempts=spec.attempts,
        concurrency=spec.concurrency,
        timeouts=dict(spec.timeouts),
        pass_reward=spec.pass_reward,
        source={
            "tasks_dir": str(spec.tasks_dir.expanduser().resolve()) if spec.tasks_dir else None,
            "pool": spec.pool,
            "include": spec.include,
            "exclude": spec.exclude,
        },
    )
    # Client-side checks first (harness and model against the backend's capabilities).
    for agent in job.agents:
        request = rollout_request(job, Trial(task_ids[0], agent, 1))
        ep.validate_rollout_request(request, **conn)
    if job.pool_created:
        body = {
            "pool_id": pool_id,
            "pool_type": "sandbox",
            "concurrency": spec.concurrency,
            "tags": ["envpools-job"],
            "tasks": [ep.PoolTask.from_local(t.task_id, str(t.path)).model_dump() for t in local],
        }
        ep.create_pool(request=body, **conn)
    try:
        for agent in job.agents:
            try:
                verdict = ep.validate_rollout(
                    request=rollout_request(job, Trial(task_ids[0], agent, 1)), **conn
                )
            except ep.NotFoundError:
                break  # a backend without rollouts:validate: its creates will say

            if verdict.get("valid") is False:
                error = verdict.get("error") or {}
                raise PlanError(
                    f"the backend rejects agent {agent.label!r}: "
                    f"{error.get('message') or error.get('code') or 'invalid'}"
                )
        return store.create(job)
    except BaseException:
        if job.pool_created:
            with contextlib.suppress(ep.APIError, ep.TransportError):
                ep.delete_pool(pool_id, **conn)
        raise


def concurrency_note(conn: dict[str, Any], concurrency: int) -> str | None:
    """What to tell someone asking for ``-n`` above what the backend runs at once.

    A backend that says how many rollouts it runs at once (the local one, in its queue
    status) and runs fewer than ``concurrency``: the number and the knob to turn. Other
    backends, or one that cannot be asked: nothing (the job runs all the same).
    """
    try:
        status = ep.get_queue_status(**_conn_only(conn))
    except (ep.APIError, ep.TransportError):
        return None
    scheduling = status.get("scheduling") if isinstance(status, dict) else None
    if not isinstance(scheduling, dict):
        return None
    capacity = scheduling.get("capacity") or {}
    at_once = capacity.get("runs_at_once")
    if not isinstance(at_once, int) or concurrency <= at_once:
        return None
    how = {
        "cpus": "envpools local up --cpu-overcommit X",
        "memory": "ENVPOOLS_MEMORY_FRACTION, or tasks asking for less memory_mb",
        "open_files": "a higher open-files limit (ulimit -n) for the backend",
        "max_running": "envpools local up --max-running N",
        "sandbox_slots": "more worker nodes (or sandbox slots) in the Ray cluster",
    }.get(str(capacity.get("limited_by")), "envpools local up --max-running N")
    return (
        f"-n {concurrency}: the backend runs at most {at_once} rollouts at once "
        f"(limited by {capacity.get('limited_by')}); the others wait in its queue. "
        f"For more at once: {how} (envpools local down first)"
    )


def job_stats(job: Job, store: JobStore) -> JobStats:
    return compute(
        store.results(job),
        task_ids=job.task_ids,
        agents=job.agents,
        attempts=job.attempts,
        pass_reward=job.pass_reward,
    )


def describe(job: Job, store: JobStore, records: dict[str, Record] | None = None) -> dict[str, Any]:
    """The job's manifest and its progress, as printed by ``jobs list`` and ``show``."""
    records = store.records(job) if records is None else records
    planned = {t.key for t in job.trials()}
    results = [r.result for k, r in records.items() if k in planned and r.result]
    attempts = [r for r in results if is_attempt(r)]
    passes = sum(1 for r in attempts if passed(r, job.pass_reward))
    launched = sum(1 for k, r in records.items() if k in planned and r.rollout_id)
    state = store.state(job)
    unknown = [r for r in results if r.cost_usd is None]
    known_cost = sum(r.cost_usd for r in results if r.cost_usd is not None)
    return {
        "id": job.id,
        "name": job.name,
        "status": store.status(job, records),
        "created_at": job.created_at,
        "finished_at": state.get("at") if state.get("status") == "finished" else None,
        "backend_base": job.backend_base,
        "pool_id": job.pool_id,
        "dataset": job.dataset,
        "tasks": len(job.task_ids),
        "agents": [a.label for a in job.agents],
        "attempts": job.attempts,
        "total": job.total,
        "launched": launched,
        "ended": len(results),
        "attempts_ended": len(attempts),
        "passes": passes,
        "errors": sum(1 for r in results if r.error_kind is not None),
        "pass_rate": passes / len(attempts) if attempts else None,
        "cost_usd": None if unknown else known_cost,
        "cost_usd_known": known_cost,
        "unpriced_rollouts": len(unknown),
        "input_tokens": sum(r.input_tokens for r in results),
        "output_tokens": sum(r.output_tokens for r in results),
        "cache_tokens": sum(r.cache_tokens for r in results),
        "pass_reward": job.pass_reward,
        "folder": str(job.folder) if job.folder else None,
    }


def rollout_rows(job: Job, store: JobStore) -> list[dict[str, Any]]:
    """One row per planned trial that has a rollout, in plan order."""
    records = store.records(job)
    rows = []
    for trial in job.trials():
        record = records.get(trial.key)
        if record is None or not record.rollout_id:
            continue
        row: dict[str, Any] = {
            "rollout_id": record.rollout_id,
            "task_id": trial.task_id,
            "agent": trial.agent.harness,
            "model": trial.agent.model,
            "agent_label": trial.agent.label,
            "attempt": trial.attempt,
            "status": "running",
            "launched_at": record.launched_at,
        }
        if record.result is not None:
            result = record.result.to_dict()
            result.pop("agent", None)
            result.pop("model", None)  # the one asked for, as the trial has it
            row.update(result)
            row["passed"] = passed(record.result, job.pass_reward)
            row["error_kind"] = record.result.error_kind
            row["transient_error"] = record.result.transient_error
        rows.append(row)
    return rows


def cancel_job(job: Job, store: JobStore, conn: dict[str, Any]) -> list[str]:
    """Stop launching (a running ``jobs run`` sees it) and cancel rollouts still going."""
    conn = _conn_only(conn)
    store.set_state(job, "cancelled")
    cancelled = []
    for record in store.records(job).values():
        if record.rollout_id and record.result is None:
            doc = ep.cancel_rollout(record.rollout_id, **conn)
            if RolloutStatus.parse(doc.get("status")) is RolloutStatus.CANCELLED:
                cancelled.append(record.rollout_id)
            # Nobody else follows this job: record the outcome here.
            ended = RolloutStatus.terminal(doc.get("status"))
            if ended and store.running_pid(job) is None:
                record.result = Result.from_rollout(record.trial, doc, doc.get("usage"))
                store.save(job, record)
    return cancelled


def delete_job(
    job: Job, store: JobStore, conn: dict[str, Any] | None, *, keep_pool: bool
) -> str | None:
    """Remove the job folder, and the pool the job created unless ``keep_pool``: its
    rollouts still going (a job stopped halfway) are cancelled first, since a pool with
    rollouts queued or running cannot go.

    Returns a warning when the pool could not be deleted (the folder is gone anyway).
    """
    warning = None
    if job.pool_created and not keep_pool and conn is not None:
        conn = _conn_only(conn)
        try:
            for record in store.records(job).values():
                if record.rollout_id and record.result is None:
                    with contextlib.suppress(ep.NotFoundError):
                        ep.cancel_rollout(record.rollout_id, **conn)
            ep.delete_pool(job.pool_id, **conn)
        except ep.NotFoundError:
            pass
        except (ep.APIError, ep.TransportError) as exc:
            warning = (
                f"pool {job.pool_id} was not deleted: {exc} "
                f"(delete it later: envpools pools delete {job.pool_id} --yes)"
            )
    store.delete(job)
    return warning


def restore_pool(job: Job, store: JobStore, conn: dict[str, Any]) -> bool:
    """Make the job's pool again when it is gone from the backend that ran the job.

    Only for a pool the job made from local task folders that still exist, and only on a
    backend that still holds the job's rollouts (the same backend: another one would
    start the job over, which ``resume`` must not do). True when it was made.
    """
    conn = _conn_only(conn)
    if not job.pool_created or not job.task_paths:
        return False
    known = [r.rollout_id for r in store.records(job).values() if r.rollout_id]
    if not known:
        return False
    try:
        ep.get_rollout(known[0], **conn)
    except (ep.NotFoundError, ep.AuthenticationError, ep.PermissionDeniedError):
        return False
    tasks = []
    for task_id in job.task_ids:
        path = job.task_paths.get(task_id)
        if not path or not _still_a_task(path):
            return False
        tasks.append(ep.PoolTask.from_local(task_id, path).model_dump())
    body = {
        "pool_id": job.pool_id,
        "pool_type": "sandbox",
        "concurrency": job.concurrency,
        "tags": ["envpools-job"],
        "tasks": tasks,
    }
    ep.create_pool(request=body, **conn)
    return True


def _still_a_task(path: str) -> bool:
    """Whether ``path`` is still a Harbor task folder."""
    from pathlib import Path

    from envpools_cli.jobs.plan import is_harbor_task

    return is_harbor_task(Path(path))
