"""Trajectories as training and analysis data: a job's rollouts, or any rollouts, to a folder.

Each rollout's ``trajectory.json`` (ATIF, written by the backend) is fetched through the
API and written as one of:

- ``atif``: ``<rollout id>.json`` per rollout, the document as the backend wrote it;
- ``messages``: ``messages.jsonl``, one conversation per line as OpenAI-style chat
  messages (tool calls and tool results included), with the tools offered and the
  rollout's reward, task, agent, model and attempt as ``metadata``: the shape
  ``datasets.load_dataset("json", data_files=...)`` and SFT trainers read;
- ``parquet``: ``rollouts.parquet``, one row per rollout with typed columns (the
  messages as a list of structs, the trajectory as JSON text), for
  ``datasets.load_dataset("parquet", ...)``; needs pyarrow (``pip install
  'envpools[parquet]'``).

Rollouts are chosen before anything is fetched (``--min-reward``, ``--status``,
``--agent``); a rollout without a trajectory (still running, or from a backend that
writes none) is skipped and named, never a failure of the whole export.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli import client as ep
from envpools_cli.atif import Trajectory, to_messages

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportItem",
    "ExportResult",
    "TrajectoryMissing",
    "choose",
    "export",
    "items_of_job",
    "items_of_rollouts",
    "load_trajectory",
    "parquet_available",
    "targets",
]

FORMATS = ("atif", "messages", "parquet")
TRAJECTORY = "trajectory.json"
_WORKERS = 8


class ExportError(Exception):
    """Something the caller should fix (a missing library, files in the way)."""


class TrajectoryMissing(LookupError):
    """The rollout has no trajectory (yet)."""


@dataclass
class ExportItem:
    """One rollout to export, with the metadata that travels with its conversation."""

    rollout_id: str
    task_id: str | None = None
    dataset: str | None = None
    agent: str | None = None
    model: str | None = None
    attempt: int | None = None
    status: str | None = None
    reward: float | None = None
    rewards: dict[str, float] | None = None
    job_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_tokens: int | None = None
    cost_usd: float | None = None

    def metadata(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "rewards"} | {"rewards": self.rewards}


@dataclass
class ExportResult:
    written: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    if number is None and isinstance(value, str) and value.isdigit():
        return int(value)
    return None if number is None else int(number)


def items_of_job(job_id: str, rows: Iterable[dict[str, Any]], dataset: str) -> list[ExportItem]:
    """The rollouts of a job (``jobs.lifecycle.rollout_rows``), in plan order."""
    return [
        ExportItem(
            rollout_id=str(row["rollout_id"]),
            task_id=row.get("task_id"),
            dataset=dataset,
            agent=row.get("agent"),
            model=row.get("model"),
            attempt=_whole(row.get("attempt")),
            status=row.get("status"),
            reward=_number(row.get("reward")),
            rewards=row.get("rewards") if isinstance(row.get("rewards"), dict) else None,
            job_id=job_id,
            input_tokens=_whole(row.get("input_tokens")),
            output_tokens=_whole(row.get("output_tokens")),
            cache_tokens=_whole(row.get("cache_tokens")),
            cost_usd=_number(row.get("cost_usd")),
        )
        for row in rows
    ]


def items_of_rollouts(docs: Iterable[dict[str, Any]]) -> list[ExportItem]:
    """Rollouts as the API returns them (``get_rollout``)."""
    items = []
    for doc in docs:
        task = _dict(doc.get("task_ref"))
        agent = _dict(doc.get("agent"))
        metadata = _dict(doc.get("metadata"))
        usage = _dict(doc.get("usage"))
        items.append(
            ExportItem(
                rollout_id=str(doc.get("rollout_id") or doc.get("trial_id")),
                task_id=task.get("task_id"),
                dataset=task.get("dataset"),
                agent=agent.get("harness") or agent.get("kind"),
                model=agent.get("model_id"),
                attempt=_whole(metadata.get("envpools_attempt")),
                status=str(doc.get("status") or "").lower() or None,
                reward=_number(doc.get("reward_primary")),
                rewards=doc.get("rewards") if isinstance(doc.get("rewards"), dict) else None,
                job_id=metadata.get("envpools_job"),
                input_tokens=_whole(usage.get("llm_input_tokens")),
                output_tokens=_whole(usage.get("llm_output_tokens")),
                cache_tokens=_whole(usage.get("llm_cache_tokens")),
                cost_usd=_number(usage.get("cost_usd")),
            )
        )
    return items


def choose(
    items: list[ExportItem],
    *,
    min_reward: float | None,
    statuses: list[str] | None,
    agents: list[str] | None,
) -> list[ExportItem]:
    """The rollouts the filters keep (a rollout without a reward is below any minimum)."""
    chosen = []
    for item in items:
        if min_reward is not None and (item.reward is None or item.reward < min_reward):
            continue
        if statuses and (item.status or "") not in statuses:
            continue
        if agents and (item.agent or "") not in agents:
            continue
        chosen.append(item)
    return chosen


def load_trajectory(rollout_id: str, conn: dict[str, Any]) -> Trajectory:
    """The rollout's trajectory, checked against the ATIF model."""
    try:
        data = ep.fetch_artifact(rollout_id, TRAJECTORY, **conn)
    except ep.NotFoundError:
        raise TrajectoryMissing(rollout_id) from None
    return Trajectory.model_validate_json(data)


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def targets(folder: Path, fmt: str, items: list[ExportItem]) -> list[Path]:
    """The files an export writes (checked before anything is fetched)."""
    if fmt == "atif":
        return [folder / f"{item.rollout_id}.json" for item in items]
    return [folder / ("messages.jsonl" if fmt == "messages" else "rollouts.parquet")]


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _conversation(item: ExportItem, trajectory: Trajectory) -> dict[str, Any]:
    return {
        "messages": to_messages(trajectory),
        "tools": trajectory.agent.tool_definitions or [],
        "metadata": item.metadata(),
    }


def _parquet(rows: list[tuple[ExportItem, Trajectory]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    call = pa.struct(
        [
            ("id", pa.string()),
            ("type", pa.string()),
            ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
        ]
    )
    message = pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("tool_call_id", pa.string()),
            ("tool_calls", pa.list_(call)),
        ]
    )
    schema = pa.schema(
        [
            ("rollout_id", pa.string()),
            ("job_id", pa.string()),
            ("dataset", pa.string()),
            ("task_id", pa.string()),
            ("agent", pa.string()),
            ("model", pa.string()),
            ("attempt", pa.int64()),
            ("status", pa.string()),
            ("reward", pa.float64()),
            ("rewards", pa.string()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("cache_tokens", pa.int64()),
            ("cost_usd", pa.float64()),
            ("num_steps", pa.int64()),
            ("messages", pa.list_(message)),
            ("tools", pa.string()),
            ("trajectory", pa.string()),
        ]
    )
    records = []
    for item, trajectory in rows:
        messages = [
            {
                "role": m["role"],
                "content": m.get("content"),
                "tool_call_id": m.get("tool_call_id"),
                "tool_calls": m.get("tool_calls"),
            }
            for m in to_messages(trajectory)
        ]
        records.append(
            {
                "rollout_id": item.rollout_id,
                "job_id": item.job_id,
                "dataset": item.dataset,
                "task_id": item.task_id,
                "agent": item.agent,
                "model": item.model or trajectory.agent.model_name,
                "attempt": item.attempt,
                "status": item.status,
                "reward": item.reward,
                "rewards": json.dumps(item.rewards) if item.rewards is not None else None,
                "input_tokens": item.input_tokens,
                "output_tokens": item.output_tokens,
                "cache_tokens": item.cache_tokens,
                "cost_usd": item.cost_usd,
                "num_steps": len(trajectory.steps),
                "messages": messages,
                "tools": json.dumps(trajectory.agent.tool_definitions or []),
                "trajectory": json.dumps(trajectory.to_json_dict(), ensure_ascii=False),
            }
        )
    table = pa.Table.from_pylist(records, schema=schema)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def export(
    items: list[ExportItem],
    folder: Path,
    fmt: str,
    conn: dict[str, Any],
    *,
    advance: Callable[[], None] = lambda: None,
) -> ExportResult:
    """Fetch each rollout's trajectory (a few at a time) and write ``fmt`` under ``folder``."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "parquet" and not parquet_available():
        raise ExportError(
            "parquet needs pyarrow: pip install 'envpools[parquet]' (or pip install pyarrow)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    result = ExportResult()

    def fetch(item: ExportItem) -> tuple[ExportItem, Trajectory | None, str | None]:
        try:
            return item, load_trajectory(item.rollout_id, conn), None
        except TrajectoryMissing:
            return item, None, "no trajectory.json (still running, or not written by its backend)"
        except ValueError as exc:  # not ATIF
            return item, None, f"trajectory.json is not valid ATIF: {str(exc)[:300]}"
        finally:
            advance()

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        fetched = list(pool.map(fetch, items))
    kept: list[tuple[ExportItem, Trajectory]] = []
    for item, trajectory, problem in fetched:
        if trajectory is None:
            result.skipped.append({"rollout_id": item.rollout_id, "reason": problem or ""})
        else:
            kept.append((item, trajectory))
            result.written.append(item.rollout_id)
    if fmt == "atif":
        for item, trajectory in kept:
            path = folder / f"{item.rollout_id}.json"
            text = json.dumps(trajectory.to_json_dict(), ensure_ascii=False, indent=1)
            _write_atomic(path, text.encode())
            result.files.append(str(path))
    elif fmt == "messages":
        path = folder / "messages.jsonl"
        lines = [
            json.dumps(_conversation(item, trajectory), ensure_ascii=False) + "\n"
            for item, trajectory in kept
        ]
        _write_atomic(path, "".join(lines).encode())
        result.files.append(str(path))
    else:
        path = folder / "rollouts.parquet"
        _parquet(kept, path)
        result.files.append(str(path))
    return result
