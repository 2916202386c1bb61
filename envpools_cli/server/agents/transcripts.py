"""The transcripts of the coding-agent CLIs: their JSON output, as trajectory steps.

One class per CLI, each reading the output its adapter asks for (reference/
HARBOR_AND_HARNESSES.md §2, and Harbor's own converters in ``harbor/agents/installed``):

- Claude Code's stream-json: one ``assistant`` line per content block, all with the
  message's id (one step per id), tool results in ``user`` lines;
- Codex's ``exec --json`` items: messages, reasoning, command executions, file changes,
  MCP calls; a step ends where the model must have been asked again (a result came in);
- OpenCode's ``run --format json`` events: ``step_start`` .. ``step_finish`` is one
  model response, with its tokens and cost;
- Qwen Code's stream-json: Claude Code's, one ``assistant`` line a whole message, its
  ``input_tokens`` counting the cached ones;
- Gemini CLI's stream-json: the user's message, the assistant's text in ``delta`` pieces,
  ``tool_use`` and ``tool_result``; it marks no response's end, so a step ends where a
  result came in (the model was asked again), and it prints no per-step tokens;
- mini-swe-agent's messages (one JSON line each, printed by its adapter): every
  ``assistant`` message is one model call, with the provider's usage and response id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from envpools_cli.server.agents.transcript import DraftStep, Transcript, clip

__all__ = [
    "ClaudeCodeTranscript",
    "CodexTranscript",
    "GeminiCliTranscript",
    "MiniSweAgentTranscript",
    "OpenCodeTranscript",
    "QwenCodeTranscript",
]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _append(current: str | None, text: str, joint: str = "\n") -> str:
    return clip(f"{current}{joint}{text}" if current else text)


def _millis(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        moment = datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: Any) -> str | None:
    """An ISO 8601 time the CLI printed, or None (ATIF refuses anything else)."""
    if not isinstance(value, str):
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value


class ClaudeCodeTranscript(Transcript):
    def record(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "system" and message.get("subtype") == "init":
            self.session_id = str(message.get("session_id") or "") or self.session_id
            self.model = str(message.get("model") or "") or self.model
            self.version = str(message.get("claude_code_version") or "") or self.version
            tools = message.get("tools")
            if isinstance(tools, list):
                self.tools = [str(t) for t in tools][:500]
        elif kind == "assistant":
            self._assistant(message)
        elif kind == "user":
            self._user(message)
        elif kind == "result":
            usage = _dict(message.get("usage"))
            self.final = {
                "is_error": bool(message.get("is_error")),
                "subtype": message.get("subtype"),
                "num_turns": message.get("num_turns"),
                "cost_usd": message.get("total_cost_usd"),
                "text": clip(message.get("result") or "", 4000),
                "usage": usage,
            }

    def _assistant(self, message: dict[str, Any]) -> None:
        body = _dict(message.get("message"))
        response_id = str(body.get("id") or "") or None
        step = self.current()
        if step is None or response_id is None or step.response_id != response_id:
            step = self.agent_step(
                response_id=response_id,
                model=str(body.get("model") or "") or None,
                timestamp=_timestamp(message.get("timestamp")),
            )
            if message.get("parent_tool_use_id"):
                step.extra["parent_tool_use_id"] = str(message["parent_tool_use_id"])
        usage = body.get("usage")
        if isinstance(usage, dict):
            step.metrics = self._metrics(body, usage)
        if message.get("error"):
            step.extra["error"] = clip(message["error"], 4000)
        for block in body.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                step.message = _append(step.message, str(block.get("text") or ""))
            elif block.get("type") == "thinking":
                step.reasoning = _append(step.reasoning, str(block.get("thinking") or ""))
            elif block.get("type") == "tool_use":
                self.call(step, block.get("id"), block.get("name"), block.get("input"))

    @staticmethod
    def _metrics(body: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
        cached = _int(usage.get("cache_read_input_tokens"))
        metrics = {
            "prompt_tokens": _int(usage.get("input_tokens"))
            + cached
            + _int(usage.get("cache_creation_input_tokens")),
            "cached_tokens": cached,
        }
        # A line printed while the answer streamed carries the output count of its
        # start (1): only a finished message (a stop reason) says how many there were.
        if body.get("stop_reason"):
            metrics["completion_tokens"] = _int(usage.get("output_tokens"))
        return metrics

    def _user(self, message: dict[str, Any]) -> None:
        body = _dict(message.get("message"))
        content = body.get("content")
        if isinstance(content, str):
            if not message.get("parent_tool_use_id"):
                self.add(DraftStep("user", clip(content), llm_calls=None))
            return
        texts = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result":
                output = block.get("content")
                if isinstance(output, list):
                    output = "\n".join(
                        str(part.get("text", "")) for part in output if isinstance(part, dict)
                    )
                self.result(block.get("tool_use_id"), output, is_error=bool(block.get("is_error")))
            elif block.get("type") == "text":
                texts.append(str(block.get("text") or ""))
        if texts and not message.get("parent_tool_use_id"):
            self.add(DraftStep("user", clip("\n".join(texts)), llm_calls=None))


class CodexTranscript(Transcript):
    def record(self, message: dict[str, Any]) -> None:
        kind = str(message.get("type") or "")
        if kind == "thread.started":
            self.session_id = str(message.get("thread_id") or "") or self.session_id
        elif kind == "turn.completed" and isinstance(message.get("usage"), dict):
            self.final["usage"] = message["usage"]
        elif kind == "turn.failed":
            error = _dict(message.get("error"))
            self.final["error"] = clip(error.get("message") or "", 4000)
        elif kind.startswith("item.") and isinstance(message.get("item"), dict):
            self._item(kind == "item.completed", message["item"])

    def _open(self, what: str) -> DraftStep:
        """The step a new item belongs to: the current one, unless the model spoke again.

        A call after results came in, or a message or reasoning after calls or another
        message, must be from a later model response.
        """
        step = self.current()
        if step is None:
            return self.agent_step()
        if what == "call" and step.results:
            return self.agent_step()
        if what == "message" and (step.message or step.calls):
            return self.agent_step()
        if what == "reasoning" and (step.message or step.calls or step.reasoning):
            return self.agent_step()
        return step

    def _tool(self, item: dict[str, Any], name: str, arguments: Any) -> str:
        item_id = str(item.get("id") or "")
        owner = next((s for s in reversed(self.steps) if item_id and s.has_call(item_id)), None)
        self.call(owner or self._open("call"), item_id or None, name, arguments)
        return item_id

    def _item(self, done: bool, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "agent_message" and done:
            step = self._open("message")
            step.message = _append(step.message, str(item.get("text") or ""))
        elif kind == "reasoning" and done:
            step = self._open("reasoning")
            step.reasoning = _append(step.reasoning, str(item.get("text") or ""))
        elif kind == "command_execution":
            call_id = self._tool(item, "shell", {"command": item.get("command", "")})
            if done:
                self.result(
                    call_id,
                    item.get("aggregated_output", ""),
                    exit_code=item.get("exit_code"),
                    is_error=item.get("status") == "failed",
                )
        elif kind == "file_change":
            call_id = self._tool(item, "apply_patch", {"changes": item.get("changes") or []})
            if done:
                self.result(call_id, str(item.get("status") or ""))
        elif kind == "mcp_tool_call":
            name = f"{item.get('server')}.{item.get('tool')}"
            call_id = self._tool(item, name, item.get("arguments"))
            if done:
                error = item.get("error")
                self.result(call_id, error or item.get("result") or "", is_error=bool(error))
        elif kind == "web_search":
            call_id = self._tool(item, "web_search", {"query": item.get("query", "")})
            if done:
                self.result(call_id, "")


class OpenCodeTranscript(Transcript):
    def __init__(self) -> None:
        super().__init__()
        self._open_step: DraftStep | None = None

    def _step(self, timestamp: str | None = None) -> DraftStep:
        if self._open_step is None:
            self._open_step = self.agent_step(timestamp=timestamp)
        return self._open_step

    def record(self, message: dict[str, Any]) -> None:
        kind = str(message.get("type") or "")
        self.session_id = str(message.get("sessionID") or "") or self.session_id
        part = _dict(message.get("part"))
        when = _millis(message.get("timestamp"))
        if kind == "step_start":
            self._open_step = None
            step = self._step(when)
            if part.get("messageID"):
                step.extra["message_id"] = str(part["messageID"])
        elif kind == "text":
            step = self._step(when)
            step.message = _append(step.message, str(part.get("text") or ""))
        elif kind == "reasoning":
            step = self._step(when)
            step.reasoning = _append(step.reasoning, str(part.get("text") or ""))
        elif kind == "tool_use":
            state = _dict(part.get("state"))
            step = self._step(when)
            call = self.call(
                step, part.get("callID") or part.get("id"), part.get("tool"), state.get("input")
            )
            output = state.get("output")
            error = state.get("error")
            if output is not None or error is not None:
                self.result(
                    call.call_id,
                    output if output is not None else error,
                    is_error=state.get("status") == "error",
                )
        elif kind == "step_finish":
            step = self._step(when)
            tokens = _dict(part.get("tokens"))
            cache = _dict(tokens.get("cache"))
            step.metrics = {
                "prompt_tokens": _int(tokens.get("input")) + _int(cache.get("read")),
                "completion_tokens": _int(tokens.get("output")),
                "cached_tokens": _int(cache.get("read")),
            }
            if isinstance(part.get("cost"), int | float) and part["cost"]:
                step.metrics["cost_usd"] = float(part["cost"])
            if _int(tokens.get("reasoning")):
                step.metrics["reasoning_tokens"] = _int(tokens.get("reasoning"))
            if part.get("reason"):
                step.extra["finish_reason"] = str(part["reason"])
            self._open_step = None
        elif kind == "error":
            error = _dict(message.get("error"))
            data = _dict(error.get("data"))
            self.final["error"] = clip(data.get("message") or error.get("name") or "", 4000)


class QwenCodeTranscript(ClaudeCodeTranscript):
    """Qwen Code's stream-json: Claude Code's, but each ``assistant`` line is a whole
    message, its usage final whatever its stop reason (none for the last answer), and
    its ``input_tokens`` already count the cached ones (the OpenAI convention)."""

    def record(self, message: dict[str, Any]) -> None:
        super().record(message)
        if message.get("type") == "system" and message.get("subtype") == "init":
            self.version = str(message.get("qwen_code_version") or "") or self.version

    @staticmethod
    def _metrics(body: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt_tokens": _int(usage.get("input_tokens")),
            "completion_tokens": _int(usage.get("output_tokens")),
            "cached_tokens": _int(usage.get("cache_read_input_tokens")),
        }


class GeminiCliTranscript(Transcript):
    def _open(self, when: str | None) -> DraftStep:
        """The step under way, unless results came in since: then the model spoke again."""
        step = self.current()
        if step is None or step.results:
            return self.agent_step(timestamp=when)
        return step

    def record(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        when = _timestamp(message.get("timestamp"))
        if kind == "init":
            self.session_id = str(message.get("session_id") or "") or self.session_id
            self.model = str(message.get("model") or "") or self.model
        elif kind == "message":
            content = str(message.get("content") or "")
            if message.get("role") == "user":
                self.add(DraftStep("user", clip(content), timestamp=when, llm_calls=None))
            elif message.get("role") == "assistant":
                step = self._open(when)
                # Deltas are pieces of one text; a whole message (no delta) is a paragraph.
                joint = "" if message.get("delta") else "\n"
                step.message = _append(step.message, content, joint)
        elif kind == "tool_use":
            step = self._open(when)
            self.call(
                step, message.get("tool_id"), message.get("tool_name"), message.get("parameters")
            )
        elif kind == "tool_result":
            error = _dict(message.get("error"))
            output = message.get("output")
            self.result(
                message.get("tool_id"),
                output if output is not None else error.get("message"),
                is_error=message.get("status") == "error",
            )
        elif kind == "error":
            problems = self.final.setdefault("errors", [])
            if isinstance(problems, list) and len(problems) < 20:
                problems.append(
                    {
                        "severity": message.get("severity"),
                        "message": clip(message.get("message") or "", 4000),
                    }
                )
        elif kind == "result":
            error = _dict(message.get("error"))
            self.final.update(
                status=message.get("status"),
                stats=_dict(message.get("stats")),
                error=clip(error.get("message") or "", 4000) or None,
            )


def _seconds(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return _millis(value * 1000)


class MiniSweAgentTranscript(Transcript):
    """mini-swe-agent's messages, as its adapter prints them (``envpools.mini`` lines).

    The model's answers are ``assistant`` messages with their tool calls, the commands'
    outputs ``tool`` messages (or ``user`` ones, for a text-based config), and what mini
    tells the model itself (the task, a format error) ``user`` messages; ``exit`` ends the
    run with its status and submission.
    """

    def record(self, message: dict[str, Any]) -> None:
        if message.get("type") != "envpools.mini":
            return
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else "" if content is None else clip(content)
        when = _seconds(message.get("timestamp"))
        if role == "system":
            self.system = clip(text)
        elif role == "user":
            step = self.add(DraftStep("user", clip(text), timestamp=when, llm_calls=None))
            if message.get("interrupt"):
                step.extra["interrupt"] = str(message["interrupt"])
        elif role == "assistant":
            self._assistant(message, text, when)
        elif role == "tool":
            code = message.get("returncode")
            self.result(
                message.get("tool_call_id"),
                text,
                exit_code=code if isinstance(code, int) else None,
                is_error=code not in (0, None),
            )
        elif role == "exit":
            self.final.update(
                exit_status=message.get("exit_status"), submission=clip(text, 4000) or None
            )

    def _assistant(self, message: dict[str, Any], text: str, when: str | None) -> None:
        model = str(message.get("model") or "") or None
        self.model = self.model or model
        step = self.agent_step(
            message=clip(text),
            model=model,
            response_id=str(message.get("response_id") or "") or None,
            timestamp=when,
        )
        if isinstance(message.get("reasoning"), str) and message["reasoning"]:
            step.reasoning = clip(message["reasoning"])
        for call in _list(message.get("tool_calls")):
            function = _dict(_dict(call).get("function"))
            self.call(step, _dict(call).get("id"), function.get("name"), function.get("arguments"))
        usage = message.get("usage")
        if isinstance(usage, dict):
            details = _dict(usage.get("prompt_tokens_details"))
            step.metrics = {
                "prompt_tokens": _int(usage.get("prompt_tokens")),
                "completion_tokens": _int(usage.get("completion_tokens")),
                "cached_tokens": _int(details.get("cached_tokens")),
            }
            cost = message.get("cost")
            if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
                step.metrics["cost_usd"] = float(cost)
