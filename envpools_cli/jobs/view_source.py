"""The viewer's jobs: this machine's job store, for the backend the viewer shows.

What ``envpools jobs list``, ``show`` and ``report`` print, as the viewer's JSON: each
job's summary, its result table, its rollouts and the report's charts. Jobs that ran on
another backend are left out (their rollouts are not there to open).
"""

from __future__ import annotations

from typing import Any

from envpools_cli.jobs.lifecycle import describe, job_stats, rollout_rows
from envpools_cli.jobs.report import cost_chart, duration_chart, pass_rate_chart, reward_chart
from envpools_cli.jobs.store import Job, JobNotFound, JobStore
from envpools_cli.models import RolloutStatus

__all__ = ["StoredJobs"]


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class StoredJobs:
    def __init__(self, store: JobStore, backend_base: str) -> None:
        self.store = store
        self.backend_base = backend_base

    def _jobs(self) -> list[Job]:
        jobs = []
        for job_id in self.store.ids():
            try:
                job = self.store.load(job_id)
            except JobNotFound:  # deleted meanwhile
                continue
            if _same(job.backend_base, self.backend_base):
                jobs.append(job)
        return jobs

    def list_jobs(self) -> list[dict[str, Any]]:
        return [describe(job, self.store) for job in self._jobs()]

    def job(self, job_id: str) -> dict[str, Any] | None:
        try:
            job = self.store.load(job_id)
        except JobNotFound:
            return None
        if not _same(job.backend_base, self.backend_base):
            return None
        result = job_stats(job, self.store).to_dict()
        rows = rollout_rows(job, self.store)
        ended = [r for r in rows if RolloutStatus.terminal(r.get("status"))]
        agents = [t["agent_label"] for t in result["totals"]]
        return {
            "job": describe(job, self.store),
            "result": result,
            "rollouts": rows,
            "charts": {
                "Pass rate": pass_rate_chart(result["totals"]),
                "Cost vs pass rate": cost_chart(result["totals"]),
                "Reward distribution": reward_chart(ended, agents),
                "Duration distribution": duration_chart(ended, agents),
            },
        }
