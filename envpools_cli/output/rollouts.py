"""How rollouts, their events and their artifacts read on a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from envpools_cli.output.describe import Section, compact, moment
from envpools_cli.output.formats import Column, plain_value
from envpools_cli.output.sanitize import clean
from envpools_cli.output.units import human_bytes, parse_time

__all__ = [
    "EVENT_STYLES",
    "ROLLOUT_ORDER",
    "STATUS_STYLES",
    "artifact_columns",
    "describe_event",
    "rollout_columns",
    "rollout_sections",
    "show_rollout",
    "show_rollouts",
]

STATUS_STYLES = {
    "queued": "dim",
    "starting": "cyan",
    "running": "cyan",
    "verifying": "blue",
    "succeeded": "green",
    "completed": "green",
    "failed": "red",
    "error": "red",
    "cancelled": "yellow",
}
EVENT_STYLES = {
    "lifecycle": "bold cyan",
    "agent": "",
    "verifier": "yellow",
    "reward": "bold green",
    "gap": "bold magenta",
    "heartbeat": "dim",
}
ROLLOUT_ORDER = [
    "rollout_id",
    "status",
    "pool_id",
    "task_ref",
    "agent",
    "reward_primary",
    "error",
    "agent_exit_code",
    "created_at",
    "started_at",
    "finished_at",
    "replay_of",
    "metadata",
]


def _duration(item: dict[str, Any]) -> str:
    began = parse_time(item.get("started_at"))
    if began is None:
        return "-"
    ended = parse_time(item.get("finished_at")) if item.get("finished_at") else None
    seconds = max(0.0, ((ended or datetime.now(UTC)) - began).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _task_id(value: Any) -> str:
    return plain_value(value.get("task_id")) if isinstance(value, dict) else plain_value(value)


def _dataset(value: Any) -> str:
    return plain_value(value.get("dataset")) if isinstance(value, dict) else "-"


def _error_code(value: Any) -> str:
    return plain_value(value.get("code")) if isinstance(value, dict) else plain_value(value)


def _agent(value: Any) -> str:
    """The harness alone: the model has a column of its own, so neither hides the other."""
    if isinstance(value, dict):
        return plain_value(value.get("harness") or value.get("kind") or "?")
    return plain_value(value)


def _model(value: Any) -> str:
    return plain_value(value.get("model_id")) if isinstance(value, dict) else "-"


def _reward(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"


def rollout_columns() -> list[Column]:
    """Table columns; rows need ``with_duration`` first. The default set fits 80 columns."""
    return [
        Column("ROLLOUT", "rollout_id", kind="id"),
        Column("STATUS", "status", kind="fixed"),
        Column("TASK", "task_ref", render=_task_id, ratio=2),
        Column("DATASET", "task_ref", render=_dataset, wide=True),
        Column("AGENT", "agent", render=_agent, kind="fixed"),
        Column("MODEL", "agent", render=_model),
        Column("POOL", "pool_id", kind="id", wide=True),
        Column("REWARD", "reward_primary", render=_reward, kind="fixed"),
        Column("DURATION", "duration", kind="fixed", wide=True),
        Column("ERROR", "error", render=_error_code, wide=True),
        Column("AGE", "created_at", kind="age"),
    ]


def with_duration(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "duration": _duration(item)} for item in items]


def artifact_columns() -> list[Column]:
    return [
        Column("PATH", "path", kind="id"),
        Column("SIZE", "size_bytes", render=human_bytes, kind="fixed"),
        Column("FROM", "provenance"),
        Column("TYPE", "content_type"),
        Column("SHA256", "sha256", render=lambda v: str(v)[:12] if v else "-"),
    ]


def _short(value: Any, limit: int | None = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = clean(text)
    return text if limit is None or len(text) <= limit else text[:limit] + "…"


def describe_event(envelope: dict[str, Any]) -> str:
    """One line for a human: what happened, agent text sanitised."""
    event = envelope.get("event")
    data = envelope.get("data")
    if not isinstance(data, dict):
        return _short(data)
    if event == "lifecycle":
        status = data.get("status", "?")
        if data.get("message"):
            # A warning or an error is shown whole: its last sentence is usually what to
            # do about it (image_unavailable's came after 300 characters of the engine's).
            limit = None if data.get("warning") or data.get("error") else 300
            return f"{status}: {_short(data['message'], limit)}"
        line = f"status {status}"
        if data.get("previous"):
            line += f" (was {data['previous']})"
        if data.get("reward_primary") is not None:
            line += f", reward {data['reward_primary']:g}"
        error = data.get("error")
        if isinstance(error, dict):
            line += f" [{error.get('code')}] {_short(error.get('message', ''), None)}"
        return line
    if event == "environment" and isinstance(data.get("message"), str):
        # A build's status or a fallback: its message, whole when it says what to do.
        return _short(data["message"], None if data.get("fallback_from") else 300)
    if event == "reward":
        rewards = data.get("rewards") or {}
        extra = {k: v for k, v in rewards.items() if k != "reward"}
        return f"reward {data.get('reward')}" + (f" {_short(extra)}" if extra else "")
    if event == "gap":
        return (
            f"{data.get('missing')} event(s) missing after seq {data.get('after_seq')}: "
            "the server could not replay them"
        )
    kind = data.get("kind")
    if kind == "tool_call":
        return f"[tool {data.get('tool')}] {_short(data.get('input', ''))}"
    if kind == "tool_result":
        code = data.get("exit_code")
        status = " error" if data.get("is_error") else (f" -> {code}" if code is not None else "")
        return f"[result{status}] {_short(data.get('output', ''))}"
    if kind == "command":
        code = data.get("exit_code")
        suffix = f" -> {code}" if code is not None else ""
        return f"$ {_short(data.get('command', ''))}{suffix}"
    if kind in ("message", "thinking", "result", "error", "warning", "retry") and "text" in data:
        prefix = {
            "thinking": "(thinking) ",
            "error": "error: ",
            "result": "result: ",
            "warning": "warning: ",
            "retry": "retry: ",
        }
        return prefix.get(str(kind), "") + _short(data["text"], 2000)
    if "text" in data:
        return clean(str(data["text"]))
    return _short(data)


def event_time(envelope: dict[str, Any]) -> str:
    stamp = envelope.get("timestamp")
    if isinstance(stamp, str) and "T" in stamp:
        return stamp.split("T", 1)[1].rstrip("Z")[:12]
    return "--:--:--.---"


#: What the sections of ``rollout_sections`` show; anything else lands in "Other".
_SHOWN_KEYS = {
    "sandbox",
    "waiting",
    "reservation",
    "node",
    "rollout_id",
    "trial_id",
    "org_id",
    "status",
    "pool_id",
    "task_ref",
    "agent",
    "environment",
    "timeouts",
    "priority",
    "metadata",
    "task_app_url",
    "task_app_id",
    "created_at",
    "started_at",
    "finished_at",
    "reward_primary",
    "rewards",
    "error",
    "agent_exit_code",
    "replay_of",
    "dry_run",
    "task_source",
    "resources",
    "routing",
    "usage",
    "limits",
    "duration",
}


def _source(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None if value is None else compact(value)
    parts = [str(value[k]) for k in ("backend", "path", "url") if value.get(k)]
    if value.get("reason"):
        parts.append(f"({value['reason']})")
    return " ".join(parts) or None


def _sandbox(value: Any) -> str | None:
    """Which driver ran the rollout, and why when it was not the one asked for."""
    if not isinstance(value, dict):
        return None if value is None else compact(value)
    line = str(value.get("driver") or "?")
    if value.get("fallback_from"):
        line += f" (instead of {value['fallback_from']}: {value.get('reason')})"
    elif value.get("reason"):
        line += f" ({value['reason']})"
    return line


def _seconds(value: Any) -> str:
    return f"{value:g}s" if isinstance(value, int | float) else compact(value)


def rollout_sections(
    doc: dict[str, Any],
    *,
    terminal: bool,
    events: list[dict[str, Any]] | None = None,
    event_count: int | None = None,
) -> list[Section]:
    """``rollouts get`` as sections: summary, task, agent, timing, usage, error, the last
    events (when given), routing."""
    from envpools_cli.output.usage import cost_rows, usage_rows

    def dict_of(key: str) -> dict[str, Any]:
        value = doc.get(key)
        return value if isinstance(value, dict) else {}

    summary = Section(None)
    summary.add("Rollout", doc.get("rollout_id"))
    error_code = _error_code(doc.get("error")) if doc.get("error") else None
    status = doc.get("status")
    summary.add("Status", f"{status} ({error_code})" if status and error_code else status)
    waiting = dict_of("waiting")
    if waiting:
        summary.add("Waiting for", waiting.get("message") or waiting.get("code"))
    summary.add("Reward", _reward(doc.get("reward_primary")))
    rewards = {k: v for k, v in dict_of("rewards").items() if k != "reward"}
    if rewards:
        summary.add("Rewards", ", ".join(f"{k}={compact(v)}" for k, v in rewards.items()))
    summary.add("Pool", doc.get("pool_id"))
    summary.add("Replay of", doc.get("replay_of"))
    if doc.get("priority"):
        summary.add("Priority", doc.get("priority"))
    if doc.get("dry_run"):
        summary.add("Dry run", True)
    if doc.get("trial_id") not in (None, doc.get("rollout_id")):
        summary.add("Trial", doc.get("trial_id"))
    summary.add("Org", doc.get("org_id"))

    task_ref = dict_of("task_ref")
    task = Section("Task")
    task.add("Dataset", task_ref.get("dataset"))
    task.add("Task", task_ref.get("task_id"))
    for key, value in task_ref.items():
        if key not in ("dataset", "task_id"):
            task.add(key.replace("_", " ").capitalize(), value)
    task.add("Source", _source(doc.get("task_source")))
    task.add("Task app", doc.get("task_app_url") or doc.get("task_app_id"))
    task.add("Environment", doc.get("environment"))
    task.add("Resources", doc.get("resources"))
    reserved = dict_of("reservation")
    if reserved:
        task.add("Reserves", f"{reserved.get('cpus')} cpus, {reserved.get('memory_mb')} MB")

    spec = dict_of("agent")
    agent = Section("Agent")
    agent.add("Harness", spec.get("harness") or spec.get("kind"))
    agent.add("Model", spec.get("model_id"))
    agent.add("Version", spec.get("harness_version"))
    for key, value in spec.items():
        if key not in ("harness", "kind", "model_id", "harness_version"):
            agent.add(key.replace("_", " ").capitalize(), value)
    agent.add("Exit code", doc.get("agent_exit_code"))
    timeouts = dict_of("timeouts")
    if timeouts:
        agent.add(
            "Timeouts",
            ", ".join(f"{k.removesuffix('_sec')} {_seconds(v)}" for k, v in timeouts.items()),
        )

    timing = Section("Timing")
    node = dict_of("node")
    if node:
        timing.add("Node", " ".join(str(node[k]) for k in ("name", "address") if node.get(k)))
    timing.add("Sandbox", _sandbox(doc.get("sandbox")))
    for label, key in (("Created", "created_at"), ("Started", "started_at")):
        timing.add(label, moment(doc.get(key), terminal=terminal))
    timing.add("Finished", moment(doc.get("finished_at"), terminal=terminal))
    if doc.get("started_at"):
        timing.add("Duration", _duration(doc) + ("" if doc.get("finished_at") else " so far"))

    usage_doc = dict_of("usage")
    usage = Section("Usage")
    if usage_doc:
        for label, value in usage_rows(usage_doc):
            if value != "-":
                usage.add(label, value)
        costs = cost_rows(usage_doc)
        if costs:
            usage.add("Cost", costs)

    error_doc = doc.get("error")
    error = Section("Error")
    if isinstance(error_doc, dict):
        error.add("Code", error_doc.get("code"))
        error.add("Message", error_doc.get("message"))
        for key, value in error_doc.items():
            if key not in ("code", "message"):
                error.add(key.replace("_", " ").capitalize(), value)
    else:
        error.add("Error", error_doc)

    shown = len(events or [])
    recent = Section(
        f"Events (last {shown} of {event_count})"
        if event_count and event_count > shown
        else "Events"
    )
    for envelope in events or []:
        recent.add(event_time(envelope), f"{envelope.get('event')}: {describe_event(envelope)}")

    route = dict_of("routing")
    routing = Section("Routing")
    routing.add("Strategy", route.get("strategy"))
    routing.add("Pool", route.get("pool_id"))
    if route.get("task_source") != doc.get("task_source"):
        routing.add("Source", _source(route.get("task_source")))
    for key, value in route.items():
        if key not in ("strategy", "pool_id", "task_source"):
            routing.add(key.replace("_", " ").capitalize(), value)

    limits = Section("Limits")
    for key, value in dict_of("limits").items():
        if key.endswith("_mb") and isinstance(value, int | float):
            limits.add(
                key.removesuffix("_mb").replace("_", " ").capitalize(), human_bytes(value * 2**20)
            )
        else:
            limits.add(key.replace("_", " ").capitalize(), value)

    metadata = Section("Metadata")
    for key, value in dict_of("metadata").items():
        metadata.add(str(key), value)

    other = Section("Other")
    for key, value in doc.items():
        if key not in _SHOWN_KEYS:
            other.add(key, value)
    return [summary, task, agent, timing, usage, error, recent, routing, limits, metadata, other]


def show_rollouts(
    items: list[dict[str, Any]],
    fmt: str,
    fields: str | None,
    empty: str | None = None,
    *,
    wide: bool = False,
    single: bool = False,
) -> None:
    """Rollouts as a table (ids whole) or in a machine format (``single``: one object)."""
    from envpools_cli.output.formats import emit, parse_fields

    emit(
        with_duration(items) if fmt == "table" else items,
        fmt,
        columns=rollout_columns(),
        fields=parse_fields(fields),
        id_key="rollout_id",
        empty=empty,
        wide=wide,
        single=single,
    )


def show_rollout(
    item: dict[str, Any],
    fmt: str,
    fields: str | None,
    events: tuple[list[dict[str, Any]], int] | None = None,
) -> None:
    """One rollout: sections on a table (with its last ``events``, and how many there are),
    the document as it came in every machine format."""
    from envpools_cli.output.describe import print_sections
    from envpools_cli.output.formats import emit_record, parse_fields
    from envpools_cli.output.streams import is_tty

    if fmt == "table" and fields is None:
        recent, count = events if events is not None else (None, None)
        print_sections(rollout_sections(item, terminal=is_tty(), events=recent, event_count=count))
        return
    emit_record(item, fmt, fields=parse_fields(fields), id_key="rollout_id", order=ROLLOUT_ORDER)
