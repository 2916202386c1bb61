"""A job as JUnit XML for CI: one testcase per task x agent x model, its attempts inside.

A testcase passes when at least one attempt passed, is an ``error`` when no rollout
reached a verdict (each ended in an error: a verifier without a reward, a provider or
infrastructure failure; ``error_codes``) and a ``failure`` otherwise; its properties
carry the figures of the result table (errors by kind, cost, or ``cost_unknown``), and
each rollout is a line of ``system-out`` naming it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envpools_cli.output.sanitize import clean

if TYPE_CHECKING:
    from envpools_cli.jobs.stats import JobStats
    from envpools_cli.jobs.store import Job, Result

__all__ = ["write_junit"]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _line(result: Result) -> str:
    code = (result.error or {}).get("code")
    text = f"attempt {result.attempt}: {result.status} reward={result.reward} "
    text += f"rollout={result.rollout_id}"
    if result.error_kind:
        text += f" error={result.error_kind}:{code}"
    elif code:
        text += f" error={code}"
    if result.cost_usd is None:
        text += " cost=unknown"
    return text


def write_junit(path: Path, job: Job, stats: JobStats, results: Sequence[Result]) -> None:
    by_group: dict[tuple[str, str, str | None], list[Result]] = {}
    for result in results:
        by_group.setdefault((result.task_id, result.agent, result.model), []).append(result)
    root = ET.Element("testsuites", name=f"envpools job {job.id}")
    totals = {t.label: t for t in stats.totals}
    for agent in job.agents:
        total = totals[agent.label]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{job.name} [{agent.label}]",
            id=job.id,
        )
        suite_props = ET.SubElement(suite, "properties")
        ET.SubElement(suite_props, "property", name="pass_rate", value=_num(total.pass_rate))
        ET.SubElement(suite_props, "property", name="job_id", value=job.id)
        failures = errors = tests = 0
        seconds = 0.0
        for row in (g for g in stats.groups if g.label == agent.label):
            attempts = sorted(
                by_group.get((row.task_id or "", row.agent, row.model), []),
                key=lambda r: r.attempt,
            )
            tests += 1
            duration = sum(r.duration_sec or 0.0 for r in attempts)
            seconds += duration
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{job.dataset}.{agent.label}",
                name=str(row.task_id),
                time=f"{duration:.3f}",
            )
            props = ET.SubElement(case, "properties")
            for name, value in (
                ("attempts", str(row.attempts)),
                ("passes", str(row.passes)),
                ("errors", str(row.errors)),
                *((f"errors_{kind}", str(n)) for kind, n in row.errors_by_kind.items()),
                ("pass_rate", _num(row.pass_rate)),
                (f"pass_at_{row.k}", _num(row.pass_at_k)),
                ("mean_reward", _num(row.mean_reward)),
                ("cost_usd", _num(row.cost_usd)),
                *(
                    (("cost_unknown", ", ".join(row.unpriced_models) or "true"),)
                    if row.unpriced_rollouts
                    else ()
                ),
            ):
                ET.SubElement(props, "property", name=name, value=value)
            lines = [_line(r) for r in attempts]
            ET.SubElement(case, "system-out").text = clean("\n".join(lines), keep_newlines=True)
            if not attempts:
                ET.SubElement(case, "skipped", message="no attempt ended")
            elif row.passes:
                continue
            elif not row.attempts and row.errors:
                # Nothing reached a verdict: the platform's (or the task's) fault, not a
                # failure of the agent.
                errors += 1
                first = next((r for r in attempts if r.error_kind), attempts[0])
                detail = first.error or {}
                ET.SubElement(
                    case,
                    "error",
                    type=f"{first.error_kind}:{detail.get('code') or 'error'}",
                    message=clean(
                        f"{first.error_kind} error: "
                        + str(detail.get("message") or "the rollouts reached no verdict")
                    ),
                )
            else:
                failures += 1
                ET.SubElement(
                    case,
                    "failure",
                    type="not_passed",
                    message=f"0 of {row.attempts} attempts passed (reward >= {job.pass_reward:g})"
                    + (f"; {row.errors} more reached no verdict" if row.errors else ""),
                )
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("time", f"{seconds:.3f}")
    tree = ET.ElementTree(root)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
