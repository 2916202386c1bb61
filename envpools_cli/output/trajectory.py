"""A trajectory as readable steps on a terminal: who spoke, what was called, what came back.

Each step is a header line (``#3 agent  1,200 in · 40 out · $0.0037``) and its text,
indented; a tool call reads ``→ name(args)`` and its result ``← output``. Long texts are
folded to a few lines (``--full`` shows them whole), and on a terminal every line is cut
to its width. Everything shown came from the agent: escape sequences are stripped.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import is_tty, write_out

__all__ = ["print_messages", "print_trajectory", "render_trajectory"]

_FOLD = {"system": 2, "user": 6, "agent": 12, "call": 3, "result": 6}
_INDENT = "    "


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # multimodal parts
        return "\n".join(
            str(part.get("text") or f"[{part.get('type')}]")
            for part in value
            if isinstance(part, dict)
        )
    return json.dumps(value, ensure_ascii=False)


def _fold(text: str, lines: int | None) -> list[str]:
    rows = [clean(row) for row in clean(text, keep_newlines=True).split("\n")]
    while rows and not rows[-1].strip():
        rows.pop()
    if lines is None or len(rows) <= lines:
        return rows
    return [*rows[:lines], f"… {len(rows) - lines} more line(s) (--full shows all)"]


def _tokens(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    parts = []
    if isinstance(metrics.get("prompt_tokens"), int):
        parts.append(f"{metrics['prompt_tokens']:,} in")
    if isinstance(metrics.get("cached_tokens"), int) and metrics["cached_tokens"]:
        parts.append(f"{metrics['cached_tokens']:,} cached")
    if isinstance(metrics.get("completion_tokens"), int):
        parts.append(f"{metrics['completion_tokens']:,} out")
    if isinstance(metrics.get("cost_usd"), int | float):
        parts.append(f"${metrics['cost_usd']:.4f}")
    return " · ".join(parts)


def _arguments(arguments: Any) -> str:
    if isinstance(arguments, dict) and len(arguments) == 1:
        (value,) = arguments.values()
        if isinstance(value, str):
            return value
    return json.dumps(arguments, ensure_ascii=False)


def render_trajectory(document: dict[str, Any], *, full: bool = False) -> list[str]:
    """The lines of the terminal view of an ATIF document."""
    fold = {k: None if full else v for k, v in _FOLD.items()}
    agent = document.get("agent") or {}
    extra = document.get("extra") or {}
    final = document.get("final_metrics") or {}
    head = [str(extra.get("rollout_id") or document.get("trajectory_id") or "trajectory")]
    head.append(f"{agent.get('name', '?')} {agent.get('version', '')}".strip())
    if agent.get("model_name"):
        head.append(str(agent["model_name"]))
    if extra.get("status"):
        head.append(str(extra["status"]))
    if isinstance(extra.get("reward"), int | float):
        head.append(f"reward {extra['reward']:g}")
    steps = document.get("steps") or []
    head.append(f"{len(steps)} steps")
    totals = _tokens(
        {
            "prompt_tokens": final.get("total_prompt_tokens"),
            "completion_tokens": final.get("total_completion_tokens"),
            "cost_usd": final.get("total_cost_usd"),
        }
    )
    if totals:
        head.append(totals)
    lines = [clean(" · ".join(head)), ""]
    for step in steps:
        source = str(step.get("source", "?"))
        label = f"#{step.get('step_id')} {source}"
        tokens = _tokens(step.get("metrics"))
        lines.append(f"{label}  {tokens}" if tokens else label)
        for row in _fold(_text(step.get("reasoning_content")), fold["user"]):
            lines.append(f"{_INDENT}(thinking) {row}")
        for row in _fold(_text(step.get("message")), fold.get(source, fold["agent"])):
            lines.append(_INDENT + row)
        results = {
            r.get("source_call_id"): r for r in (step.get("observation") or {}).get("results") or []
        }
        for call in step.get("tool_calls") or []:
            name = clean(str(call.get("function_name", "tool")))
            shown = _fold(_arguments(call.get("arguments")), fold["call"])
            lines.append(f"{_INDENT}→ {name}: {shown[0] if shown else ''}")
            lines += [f"{_INDENT}  {row}" for row in shown[1:]]
            result = results.pop(call.get("tool_call_id"), None)
            if result is not None:
                flag = " (error)" if (result.get("extra") or {}).get("is_error") else ""
                output = _fold(_text(result.get("content")), fold["result"]) or [""]
                lines.append(f"{_INDENT}← {output[0]}{flag}")
                lines += [f"{_INDENT}  {row}" for row in output[1:]]
        for result in results.values():  # results of no call of this step
            for row in _fold(_text(result.get("content")), fold["result"]):
                lines.append(f"{_INDENT}← {row}")
    outside = (final.get("extra") or {}).get("outside_steps")
    if outside:
        lines += [
            "",
            f"outside the steps: {_tokens(outside)} ({outside.get('llm_calls', 0)} calls)",
        ]
    return lines


def print_trajectory(document: dict[str, Any], *, full: bool = False) -> None:
    lines = render_trajectory(document, full=full)
    if is_tty():
        width = shutil.get_terminal_size((100, 24)).columns
        lines = [line if len(line) <= width else line[: width - 1] + "…" for line in lines]
    write_out("".join(line + "\n" for line in lines))


def print_messages(messages: list[dict[str, Any]]) -> None:
    write_out(json.dumps(messages, indent=2, ensure_ascii=False) + "\n")
