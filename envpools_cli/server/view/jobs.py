"""Where the viewer's jobs come from: the CLI that ran them, never the backend.

Eval jobs are kept by the CLI (``<data dir>/jobs``), so ``envpools view`` hands the
viewer a ``JobsSource`` built from that store; the local backend serves no jobs.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["JobsSource"]


class JobsSource(Protocol):
    def list_jobs(self) -> list[dict[str, Any]]:
        """Each job's summary (id, name, status, total, launched, ended, pass rate, cost)."""
        ...

    def job(self, job_id: str) -> dict[str, Any] | None:
        """``{"job", "result", "rollouts", "charts"}`` of one job, or None if unknown.

        ``result`` holds the figures of ``envpools jobs show`` (totals and per-task rows),
        ``rollouts`` one row per launched trial, ``charts`` the report's SVG charts.
        """
        ...
