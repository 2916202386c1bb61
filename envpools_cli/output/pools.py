"""How a pool reads on a terminal: ``pools get`` in sections."""

from __future__ import annotations

from typing import Any

from envpools_cli.output.describe import Section, compact, moment

__all__ = ["pool_sections"]

#: Settings in the order people look for them, with their labels.
_SETTINGS = [
    ("pool_type", "Type"),
    ("status", "Status"),
    ("template", "Template"),
    ("backend", "Backend"),
    ("concurrency", "Concurrency"),
    ("capacity", "Capacity"),
    ("max_running", "Max running"),
    ("max_queue", "Max queue"),
    ("priority_weight", "Priority weight"),
    ("spend_limit_usd", "Spend limit"),
    ("tags", "Tags"),
    ("allowed_agents", "Allowed agents"),
    ("allowed_models", "Allowed models"),
]


def _task_line(task: dict[str, Any]) -> str:
    source = task.get("data_source")
    where = ""
    if isinstance(source, dict):
        where = " ".join(str(source[k]) for k in ("type", "path", "url", "uri") if source.get(k))
    elif source is not None:
        where = compact(source)
    backend = task.get("backend")
    return " · ".join(part for part in (str(backend) if backend else "", where) if part) or "-"


def pool_sections(pool: dict[str, Any], *, terminal: bool) -> list[Section]:
    """Summary, settings, tasks, timing; any field not placed lands in "Other"."""
    summary = Section(None)
    summary.add("Pool", pool.get("pool_id"))
    shown = {"pool_id", "tasks", "created_at", "updated_at"}
    for key, label in _SETTINGS:
        value = pool.get(key)
        if key == "spend_limit_usd" and isinstance(value, int | float):
            value = f"${value:g}"
        summary.add(label, value)
        shown.add(key)
    summary.add("Org", pool.get("org_id"))
    shown.add("org_id")

    items = pool.get("tasks")
    tasks = Section(f"Tasks ({len(items)})" if isinstance(items, list) else "Tasks")
    for task in items if isinstance(items, list) else []:
        if isinstance(task, dict):
            tasks.add(str(task.get("task_id") or "?"), _task_line(task))
        else:
            tasks.add("-", task)

    timing = Section("Timing")
    timing.add("Created", moment(pool.get("created_at"), terminal=terminal))
    if pool.get("updated_at") != pool.get("created_at"):
        timing.add("Updated", moment(pool.get("updated_at"), terminal=terminal))

    other = Section("Other")
    for key, value in pool.items():
        if key not in shown:
            other.add(key, value)
    return [summary, tasks, timing, other]
