"""The figures of a job's result table: pass@k, a Wilson interval, means and totals.

One row per task x agent x model, then one per agent x model over all tasks. An attempt
is a rollout that ran to a verdict: it ended other than ``cancelled`` and was no error
(``error_codes``: a verifier without a reward, a provider or infrastructure failure,
a setup problem are counted apart, by kind, and never against the agent). It passes
when it ``succeeded`` with a reward of at least the job's ``pass_reward``. An attempt
without a reward counts 0 in the mean reward. pass@k is the unbiased estimator of Chen
et al. (2021), ``1 - C(n-c, k) / C(n, k)`` per task, averaged over tasks for the totals;
the interval is Wilson's score interval on the pass rate (passes / attempts), 95% by
default. Cost is unknown (None) as soon as one rollout's is: a sum that leaves a model
out would read as a price.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from envpools_cli.error_codes import ERROR_KINDS
from envpools_cli.jobs.plan import AgentChoice
from envpools_cli.jobs.store import Result
from envpools_cli.models import RolloutStatus

__all__ = [
    "Comparison",
    "GroupStats",
    "JobStats",
    "compare",
    "compute",
    "pass_at_k",
    "wilson_interval",
]

_Z95 = NormalDist().inv_cdf(0.975)


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Chance that at least one of k attempts drawn from n (c of them passing) passes.

    None when fewer than k attempts exist: the estimator is undefined there.
    """
    if k < 1 or n < k or not 0 <= c <= n:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def wilson_interval(c: int, n: int, z: float = _Z95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion of c successes in n trials."""
    if n <= 0:
        return None
    p = c / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def passed(result: Result, pass_reward: float) -> bool:
    return (
        RolloutStatus.succeeded(result.status)
        and result.reward is not None
        and result.reward >= pass_reward
    )


def is_attempt(result: Result) -> bool:
    """It ran to a verdict: neither cancelled nor an error (errors are counted apart)."""
    return result.status != RolloutStatus.CANCELLED and result.error_kind is None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class GroupStats:
    """One row: a task x agent x model (``task_id`` set) or an agent x model total."""

    agent: str
    model: str | None
    task_id: str | None
    k: int
    planned: int
    tasks: int = 0
    attempts: int = 0
    passes: int = 0
    failures: int = 0
    errors: int = 0
    cancelled: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    transient_errors: int = 0
    pass_rate: float | None = None
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    mean_reward: float | None = None
    mean_duration_sec: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = 0.0
    """None when some rollout's cost is unknown (see ``cost_usd_known``)."""
    cost_usd_known: float = 0.0
    unpriced_rollouts: int = 0
    unpriced_models: list[str] = field(default_factory=list)
    cost_per_success: float | None = None
    models_used: list[str] = field(default_factory=list)
    """The models the rollouts reported (the default model when none was asked for)."""

    @property
    def label(self) -> str:
        return AgentChoice(self.agent, self.model).label

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["agent_label"] = self.label
        return data


@dataclass
class JobStats:
    k: int
    pass_reward: float
    groups: list[GroupStats] = field(default_factory=list)
    totals: list[GroupStats] = field(default_factory=list)
    planned: int = 0
    ended: int = 0

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.totals)

    @property
    def transient_errors(self) -> int:
        return sum(t.transient_errors for t in self.totals)

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({m for t in self.totals for m in t.unpriced_models})

    @property
    def unpriced_rollouts(self) -> int:
        return sum(t.unpriced_rollouts for t in self.totals)

    def to_dict(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for total in self.totals:
            for kind, count in total.errors_by_kind.items():
                kinds[kind] = kinds.get(kind, 0) + count
        return {
            "k": self.k,
            "pass_reward": self.pass_reward,
            "planned": self.planned,
            "ended": self.ended,
            "errors": self.errors,
            "errors_by_kind": _ordered_kinds(kinds),
            "transient_errors": self.transient_errors,
            "unpriced_rollouts": self.unpriced_rollouts,
            "unpriced_models": self.unpriced_models,
            "groups": [g.to_dict() for g in self.groups],
            "totals": [t.to_dict() for t in self.totals],
        }


def _ordered_kinds(counts: dict[str, int]) -> dict[str, int]:
    order = {kind: n for n, kind in enumerate(ERROR_KINDS)}
    return dict(sorted(counts.items(), key=lambda item: order.get(item[0], len(order))))


def _fill(row: GroupStats, results: Sequence[Result], pass_reward: float) -> None:
    """The per-rollout figures of a row (everything but the per-task averages)."""
    attempts = [r for r in results if is_attempt(r)]
    errors = [r for r in results if r.error_kind is not None]
    row.attempts = len(attempts)
    row.cancelled = sum(1 for r in results if r.status == RolloutStatus.CANCELLED)
    row.passes = sum(1 for r in attempts if passed(r, pass_reward))
    row.errors = len(errors)
    kinds: dict[str, int] = {}
    for result in errors:
        kind = result.error_kind or "infrastructure"
        kinds[kind] = kinds.get(kind, 0) + 1
    row.errors_by_kind = _ordered_kinds(kinds)
    row.transient_errors = sum(1 for r in errors if r.transient_error)
    row.failures = row.attempts - row.passes
    if row.attempts:
        row.pass_rate = row.passes / row.attempts
        row.ci_low, row.ci_high = wilson_interval(row.passes, row.attempts) or (None, None)
        row.mean_reward = _mean([r.reward if r.reward is not None else 0.0 for r in attempts])
    row.mean_duration_sec = _mean([r.duration_sec for r in attempts if r.duration_sec is not None])
    row.input_tokens = sum(r.input_tokens for r in results)
    row.output_tokens = sum(r.output_tokens for r in results)
    row.cache_tokens = sum(r.cache_tokens for r in results)
    unknown = [r for r in results if r.cost_usd is None]
    row.unpriced_rollouts = len(unknown)
    row.unpriced_models = sorted(
        {m for r in unknown for m in r.unpriced_models or [r.model_used or "unknown model"]}
    )
    row.cost_usd_known = sum(r.cost_usd for r in results if r.cost_usd is not None)
    row.cost_usd = None if unknown else row.cost_usd_known
    row.cost_per_success = (
        row.cost_usd / row.passes if row.passes and row.cost_usd is not None else None
    )
    row.models_used = sorted({r.model_used for r in results if r.model_used})


def compute(
    results: Iterable[Result],
    *,
    task_ids: Sequence[str],
    agents: Sequence[AgentChoice],
    attempts: int,
    pass_reward: float,
) -> JobStats:
    """The result table of a job from its rollouts' records (ended ones only)."""
    by_group: dict[tuple[str, str | None, str], list[Result]] = {}
    ended = 0
    for result in results:
        by_group.setdefault((result.agent, result.model, result.task_id), []).append(result)
        ended += 1
    stats = JobStats(
        k=attempts, pass_reward=pass_reward, planned=len(task_ids) * len(agents) * attempts
    )
    stats.ended = ended
    for agent in agents:
        rows: list[GroupStats] = []
        every: list[Result] = []
        for task_id in task_ids:
            found = by_group.get((agent.harness, agent.model, task_id), [])
            row = GroupStats(agent.harness, agent.model, task_id, k=attempts, planned=attempts)
            row.tasks = 1
            _fill(row, found, pass_reward)
            if row.attempts:
                row.pass_at_1 = pass_at_k(row.attempts, row.passes, 1)
                row.pass_at_k = pass_at_k(row.attempts, row.passes, attempts)
            rows.append(row)
            every.extend(found)
        total = GroupStats(
            agent.harness, agent.model, None, k=attempts, planned=attempts * len(task_ids)
        )
        _fill(total, every, pass_reward)
        total.tasks = sum(1 for r in rows if r.attempts)
        total.pass_at_1 = _mean([r.pass_at_1 for r in rows if r.pass_at_1 is not None])
        total.pass_at_k = _mean([r.pass_at_k for r in rows if r.pass_at_k is not None])
        stats.groups.extend(rows)
        stats.totals.append(total)
    return stats


@dataclass
class Comparison:
    """Job B against job A, task by task."""

    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]]

    def changed(self, change: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["change"] == change]

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["change"]] = counts.get(row["change"], 0) + 1
        return {"rows": self.rows, "totals": self.totals, "counts": counts}


def _change(a: GroupStats | None, b: GroupStats | None) -> str:
    if a is None or not a.attempts:
        if b is not None and b.attempts:
            return "only in B"
        ran = any(row is not None and row.errors for row in (a, b))
        return "no verdict" if ran else "not run"  # errors only: nothing to compare
    if b is None or not b.attempts:
        return "only in A"
    if a.passes == 0 and b.passes > 0:
        return "newly passing"
    if a.passes > 0 and b.passes == 0:
        return "newly failing"
    rate_a, rate_b = a.pass_rate or 0.0, b.pass_rate or 0.0
    if math.isclose(rate_a, rate_b):
        return "same"
    return "better" if rate_b > rate_a else "worse"


def compare(a: JobStats, b: JobStats) -> Comparison:
    """Rows keyed by task x agent x model present in either job, and agent totals."""

    def keyed(rows: list[GroupStats]) -> dict[tuple[str | None, str, str | None], GroupStats]:
        return {(r.task_id, r.agent, r.model): r for r in rows}

    def side(row: GroupStats | None, prefix: str) -> dict[str, Any]:
        if row is None:
            return {f"{prefix}_attempts": 0, f"{prefix}_passes": 0, f"{prefix}_pass_rate": None}
        return {
            f"{prefix}_attempts": row.attempts,
            f"{prefix}_passes": row.passes,
            f"{prefix}_pass_rate": row.pass_rate,
            f"{prefix}_errors": row.errors,
            f"{prefix}_cost_usd": row.cost_usd,
        }

    def build(rows_a: list[GroupStats], rows_b: list[GroupStats]) -> list[dict[str, Any]]:
        ka, kb = keyed(rows_a), keyed(rows_b)
        order = list(ka) + [key for key in kb if key not in ka]
        out = []
        for key in order:
            ra, rb = ka.get(key), kb.get(key)
            task_id, agent, model = key
            delta = None
            if ra is not None and rb is not None and ra.attempts and rb.attempts:
                delta = (rb.pass_rate or 0.0) - (ra.pass_rate or 0.0)
            out.append(
                {
                    "task_id": task_id,
                    "agent": agent,
                    "model": model,
                    "agent_label": AgentChoice(agent, model).label,
                    **side(ra, "a"),
                    **side(rb, "b"),
                    "delta_pass_rate": delta,
                    "change": _change(ra, rb),
                }
            )
        return out

    return Comparison(rows=build(a.groups, b.groups), totals=build(a.totals, b.totals))
