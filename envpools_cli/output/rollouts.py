"""How rollouts, their events and their artifacts read on a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

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
    if isinstance(value, dict):
        harness = value.get("harness") or value.get("kind") or "?"
        model = value.get("model_id")
        return f"{harness}:{model}" if model else str(harness)
    return plain_value(value)


def _reward(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"


def rollout_columns() -> list[Column]:
    """Table columns; rows need ``with_duration`` first. The default set fits 80 columns."""
    return [
        Column("ROLLOUT", "rollout_id", kind="id"),
        Column("STATUS", "status", kind="fixed"),
        Column("TASK", "task_ref", render=_task_id, ratio=2),
        Column("DATASET", "task_ref", render=_dataset, wide=True),
        Column("AGENT", "agent", render=_agent),
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


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = clean(text)
    return text if len(text) <= limit else text[:limit] + "…"


def describe_event(envelope: dict[str, Any]) -> str:
    """One line for a human: what happened, agent text sanitised."""
    event = envelope.get("event")
    data = envelope.get("data")
    if not isinstance(data, dict):
        return _short(data)
    if event == "lifecycle":
        status = data.get("status", "?")
        if data.get("message"):
            return f"{status}: {_short(data['message'])}"
        line = f"status {status}"
        if data.get("previous"):
            line += f" (was {data['previous']})"
        if data.get("reward_primary") is not None:
            line += f", reward {data['reward_primary']:g}"
        error = data.get("error")
        if isinstance(error, dict):
            line += f" [{error.get('code')}] {_short(error.get('message', ''))}"
        return line
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
