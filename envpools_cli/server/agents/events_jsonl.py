"""``envpools-jsonl`` (version 1): the event format an agent of your own can print.

One JSON object a line on stdout (or stderr), each with a ``type``; anything else on a
line (plain text, logs) is kept as output and shown when the agent fails. The types:

``message``      ``text``: what the agent says (its final answer is the last one).
``thinking``     ``text``: reasoning it wants shown.
``tool_call``    ``tool``, ``input`` (any JSON), ``call_id``: a tool it runs.
``tool_result``  ``call_id``, ``output``, ``is_error``, ``exit_code``: what the tool gave.
``usage``        ``input_tokens`` (cached ones included), ``output_tokens``,
                 ``cache_tokens``, ``cost_usd``, ``model``, ``provider``: ONE model call's
                 usage; the rollout's usage is their sum. Without ``cost_usd`` the
                 backend's price table prices the tokens by ``model``.
``error``        ``text``: why it cannot go on (the rollout's error when it did nothing).
``result``       ``text``, ``is_error``: the end of the run.

Unknown types are kept (``kind`` is the type) so that a newer agent runs on an older
backend. Every event becomes an ``agent`` event whose ``kind`` is the type, as the
built-in adapters' events are.

The same events are the trajectory's steps (``JsonlTranscript``), one step per model
call: a ``usage`` completes the step under way when it has no usage yet, else begins a
new one; ``thinking``, ``message`` and ``tool_call`` belong to the step under way, unless
tool results came in since (then the model was called again: a new step); a
``tool_result`` answers the ``tool_call`` with its ``call_id``. A ``result`` text is the
last step's message when that step said nothing and called nothing.
"""

from __future__ import annotations

from typing import Any

from envpools_cli.server.agents.base import Harness, bounded, json_line
from envpools_cli.server.agents.transcript import DraftStep, Transcript, clip

__all__ = ["FORMAT", "JsonlEventParser", "JsonlTranscript"]

FORMAT = "envpools-jsonl"


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    return clip(value if isinstance(value, str) else "" if value is None else str(value))


class JsonlTranscript(Transcript):
    """The steps of an ``envpools-jsonl`` run (the rules are in the module's docstring)."""

    def _open(self) -> DraftStep:
        step = self.current()
        if step is None or step.results:
            return self.agent_step()
        return step

    def record(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            step = self._open()
            text = _text(message.get("text"))
            step.message = clip(f"{step.message}\n{text}") if step.message else text
        elif kind == "thinking":
            step = self._open()
            text = _text(message.get("text"))
            step.reasoning = clip(f"{step.reasoning}\n{text}") if step.reasoning else text
        elif kind == "tool_call":
            self.call(
                self._open(), message.get("call_id"), message.get("tool"), message.get("input")
            )
        elif kind == "tool_result":
            code = message.get("exit_code")
            self.result(
                message.get("call_id"),
                message.get("output", ""),
                exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                is_error=bool(message.get("is_error")),
            )
        elif kind == "usage":
            self._usage(message)
        elif kind == "error":
            self.final["error"] = clip(_text(message.get("text")), 4000)
        elif kind == "result":
            text = _text(message.get("text"))
            self.final["result"] = {
                "text": clip(text, 4000),
                "is_error": bool(message.get("is_error")),
            }
            last = self.current()
            if last is not None and text and not last.message and not last.calls:
                last.message = text

    def _usage(self, message: dict[str, Any]) -> None:
        step = self.current()
        if step is None or step.metrics is not None:
            step = self.agent_step()
        step.metrics = {
            "prompt_tokens": _int(message.get("input_tokens")),
            "completion_tokens": _int(message.get("output_tokens")),
            "cached_tokens": _int(message.get("cache_tokens")),
        }
        cost = message.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            step.metrics["cost_usd"] = float(cost)
        if isinstance(message.get("model"), str) and message["model"]:
            step.model = message["model"][:200]
            self.model = self.model or step.model


class JsonlEventParser(Harness):
    """Reads ``envpools-jsonl`` lines into ``agent`` events and token usage."""

    name = FORMAT
    transcript_class = JsonlTranscript

    def __init__(self) -> None:
        super().__init__()
        self._cost = 0.0
        self._priced = False

    def on_line(self, line: str) -> dict[str, Any]:
        event = json_line(line)
        if event is None or not isinstance(event.get("type"), str):
            return self.plain(line)
        kind = event["type"][:64]
        if kind in ("message", "thinking"):
            self.progress = self.progress or kind == "message"
            return {"kind": kind, "text": bounded(str(event.get("text", "")))}
        if kind == "tool_call":
            self.progress = True
            return {
                "kind": kind,
                "tool": bounded(str(event.get("tool", "")), 200),
                "call_id": event.get("call_id"),
                "input": bounded(event.get("input")),
            }
        if kind == "tool_result":
            return {
                "kind": kind,
                "call_id": event.get("call_id"),
                "is_error": bool(event.get("is_error")),
                "exit_code": event.get("exit_code"),
                "output": bounded(event.get("output", "")),
            }
        if kind == "usage":
            return self._usage(event)
        if kind == "error":
            return self.error(str(event.get("text", ""))[:4000])
        if kind == "result":
            is_error = bool(event.get("is_error"))
            text = str(event.get("text", ""))
            if is_error:
                self.errors.append(text[:4000])
            return {"kind": kind, "is_error": is_error, "text": bounded(text)}
        return {"kind": kind}

    def _usage(self, event: dict[str, Any]) -> dict[str, Any]:
        self.usage.input_tokens += _int(event.get("input_tokens"))
        self.usage.output_tokens += _int(event.get("output_tokens"))
        self.usage.cache_tokens += _int(event.get("cache_tokens"))
        cost = event.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            self._cost += float(cost)
            self._priced = True
        self.usage.cost_usd = self._cost if self._priced else None
        if isinstance(event.get("model"), str) and event["model"]:
            self.usage.model = event["model"][:200]
        if isinstance(event.get("provider"), str) and event["provider"]:
            self.usage.provider = event["provider"][:100]
        self.progress = True
        return {
            "kind": "usage",
            "input_tokens": _int(event.get("input_tokens")),
            "output_tokens": _int(event.get("output_tokens")),
            "cache_tokens": _int(event.get("cache_tokens")),
        }
