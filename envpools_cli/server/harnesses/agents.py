"""Adapters for the coding-agent CLIs: Claude Code, Codex and OpenCode.

Each runs the real CLI headless with machine-readable output, as Harbor does, with the
organisation's stored credentials as environment variables, and turns the output into
``agent`` events and token counts (see reference/HARBOR_AND_HARNESSES.md §2).
"""

from __future__ import annotations

from typing import Any

from envpools_cli.models import PRESET_MODELS
from envpools_cli.server.harnesses.base import AgentContext, Harness, Invocation, json_line


def _clip(value: Any, limit: int = 2000) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


class ClaudeCodeHarness(Harness):
    name = "claude-code"
    binary = "claude"
    description = "Anthropic Claude Code (claude -p --output-format stream-json)"
    models = tuple(sorted(PRESET_MODELS["claude-code"]))
    log_name = "claude-code.txt"

    def __init__(self) -> None:
        super().__init__()
        self._messages: dict[str, dict[str, int]] = {}
        self._final = False
        self.usage.provider = "anthropic"

    def required_secret(self, ctx: AgentContext) -> str | None:
        if ctx.secret("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
            return None
        return "store an ANTHROPIC_API_KEY credential (envpools credentials store)"

    def invocation(self, ctx: AgentContext) -> Invocation:
        model = (ctx.model_id or "claude-sonnet-4.5").replace(".", "-")
        self.usage.model = ctx.model_id
        env = {
            "IS_SANDBOX": "1",
            "CLAUDE_CONFIG_DIR": "/logs/agent/sessions",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "ANTHROPIC_MODEL": model,
        }
        keys, secrets = ctx.export(
            "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"
        )
        env.update(keys)
        if base := ctx.secret("ANTHROPIC_BASE_URL"):
            env["ANTHROPIC_BASE_URL"] = base
        command = [
            "claude",
            "--verbose",
            "--output-format=stream-json",
            "--print",
            "--permission-mode=bypassPermissions",
            "--model",
            model,
        ]
        return Invocation(
            command,
            env=env,
            stdin=ctx.instruction.encode(),
            network=True,
            secret_env=secrets,
        )

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return {"stream": "output", "text": line}
        kind = message.get("type")
        if kind == "assistant":
            body = message.get("message") or {}
            usage = body.get("usage") or {}
            if body.get("id") and usage and not self._final:
                # One line per content block repeats the same usage: keep the last per id.
                self._messages[str(body["id"])] = {
                    "input": int(usage.get("input_tokens") or 0)
                    + int(usage.get("cache_read_input_tokens") or 0)
                    + int(usage.get("cache_creation_input_tokens") or 0),
                    "output": int(usage.get("output_tokens") or 0),
                    "cache": int(usage.get("cache_read_input_tokens") or 0),
                }
                self._sum_messages()
            for block in body.get("content") or []:
                if block.get("type") == "text":
                    return {"kind": "message", "text": _clip(block.get("text", ""))}
                if block.get("type") == "tool_use":
                    return {
                        "kind": "tool_call",
                        "tool": block.get("name"),
                        "input": _clip(block.get("input")),
                    }
                if block.get("type") == "thinking":
                    return {"kind": "thinking", "text": _clip(block.get("thinking", ""))}
        elif kind == "user":
            return {"kind": "tool_result", "text": _clip(message.get("message", {}))}
        elif kind == "result":
            usage = message.get("usage") or {}
            self._final = True
            self.usage.input_tokens = (
                int(usage.get("input_tokens") or 0)
                + int(usage.get("cache_read_input_tokens") or 0)
                + int(usage.get("cache_creation_input_tokens") or 0)
            )
            self.usage.output_tokens = int(usage.get("output_tokens") or 0)
            self.usage.cache_tokens = int(usage.get("cache_read_input_tokens") or 0)
            if isinstance(message.get("total_cost_usd"), int | float):
                self.usage.cost_usd = float(message["total_cost_usd"])
            return {
                "kind": "result",
                "is_error": bool(message.get("is_error")),
                "text": _clip(message.get("result", "")),
                "num_turns": message.get("num_turns"),
            }
        elif kind == "system":
            return {
                "kind": "system",
                "subtype": message.get("subtype"),
                "model": message.get("model"),
            }
        return {"kind": str(kind or "unknown"), "raw": _clip(line)}

    def _sum_messages(self) -> None:
        self.usage.input_tokens = sum(m["input"] for m in self._messages.values())
        self.usage.output_tokens = sum(m["output"] for m in self._messages.values())
        self.usage.cache_tokens = sum(m["cache"] for m in self._messages.values())


class CodexHarness(Harness):
    name = "codex"
    binary = "codex"
    description = "OpenAI Codex CLI (codex exec --json)"
    models = tuple(sorted(PRESET_MODELS["codex"]))
    log_name = "codex.txt"

    def __init__(self) -> None:
        super().__init__()
        self.usage.provider = "openai"

    def required_secret(self, ctx: AgentContext) -> str | None:
        if ctx.secret("CODEX_API_KEY", "OPENAI_API_KEY"):
            return None
        return "store an OPENAI_API_KEY credential (envpools credentials store)"

    def invocation(self, ctx: AgentContext) -> Invocation:
        model = ctx.model_id or "gpt-5.2-codex"
        self.usage.model = model
        env = {"CODEX_HOME": "/logs/agent/codex-home"}
        secrets: tuple[str, ...] = ()
        if key := ctx.secret("CODEX_API_KEY", "OPENAI_API_KEY"):
            env["CODEX_API_KEY"] = key  # codex exec reads this one
            env["OPENAI_API_KEY"] = key
            secrets = ("CODEX_API_KEY", "OPENAI_API_KEY")
        if base := ctx.secret("OPENAI_BASE_URL"):
            env["OPENAI_BASE_URL"] = base
        command = [
            "codex",
            "exec",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "--model",
            model,
            "--json",
            "--",
            ctx.instruction,
        ]
        return Invocation(command, env=env, network=True, secret_env=secrets)

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return {"stream": "output", "text": line}
        kind = str(message.get("type", "unknown"))
        if kind == "turn.completed":
            usage = message.get("usage") or {}
            # A running total for the thread: the last one is the run's total.
            self.usage.input_tokens = int(usage.get("input_tokens") or 0)
            self.usage.output_tokens = int(usage.get("output_tokens") or 0)
            self.usage.cache_tokens = int(usage.get("cached_input_tokens") or 0)
            return {"kind": "turn_completed", "usage": usage}
        if kind.startswith("item."):
            item = message.get("item") or {}
            item_type = item.get("type")
            if item_type == "agent_message":
                return {"kind": "message", "text": _clip(item.get("text", ""))}
            if item_type == "reasoning":
                return {"kind": "thinking", "text": _clip(item.get("text", ""))}
            if item_type == "command_execution":
                return {
                    "kind": "command",
                    "command": _clip(item.get("command", "")),
                    "status": item.get("status"),
                    "exit_code": item.get("exit_code"),
                    "output": _clip(item.get("aggregated_output", "")),
                }
            if item_type == "file_change":
                return {"kind": "file_change", "changes": item.get("changes")}
            return {"kind": str(item_type or kind), "status": item.get("status")}
        if kind in ("error", "turn.failed"):
            error = message.get("error") or message
            return {"kind": "error", "text": _clip(error.get("message", ""))}
        return {"kind": kind}


class OpenCodeHarness(Harness):
    name = "opencode"
    binary = "opencode"
    description = "OpenCode (opencode run --format json)"
    models = tuple(sorted(PRESET_MODELS["opencode"]))
    log_name = "opencode.txt"

    def __init__(self) -> None:
        super().__init__()
        self.usage.cost_usd = 0.0
        self.usage.provider = "anthropic"

    def required_secret(self, ctx: AgentContext) -> str | None:
        if ctx.secret("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"):
            return None
        return "store an ANTHROPIC_API_KEY credential (envpools credentials store)"

    def invocation(self, ctx: AgentContext) -> Invocation:
        model = ctx.model_id or "claude-sonnet-4.5"
        self.usage.model = model
        qualified = model if "/" in model else f"anthropic/{model.replace('.', '-')}"
        self.usage.provider = qualified.split("/", 1)[0]
        env = {
            "OPENCODE_FAKE_VCS": "git",
            "XDG_DATA_HOME": "/logs/agent/opencode/data",
            "XDG_STATE_HOME": "/logs/agent/opencode/state",
        }
        keys, secrets = ctx.export("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY")
        env.update(keys)
        command = [
            "opencode",
            f"--model={qualified}",
            "run",
            "--format=json",
            "--dangerously-skip-permissions",
            "--",
            ctx.instruction,
        ]
        return Invocation(command, env=env, network=True, secret_env=secrets)

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return {"stream": "output", "text": line}
        kind = str(message.get("type", "unknown"))
        part = message.get("part") or {}
        if kind == "step_finish":
            tokens = part.get("tokens") or {}
            cache = tokens.get("cache") or {}
            self.usage.input_tokens += int(tokens.get("input") or 0) + int(cache.get("read") or 0)
            self.usage.output_tokens += int(tokens.get("output") or 0)
            self.usage.cache_tokens += int(cache.get("read") or 0)
            self.usage.cost_usd = (self.usage.cost_usd or 0.0) + float(part.get("cost") or 0.0)
            return {"kind": "step_finish", "reason": part.get("reason")}
        if kind == "text":
            return {"kind": "message", "text": _clip(part.get("text", ""))}
        if kind == "reasoning":
            return {"kind": "thinking", "text": _clip(part.get("text", ""))}
        if kind == "tool_use":
            state = part.get("state") or {}
            return {
                "kind": "tool_call",
                "tool": part.get("tool"),
                "status": state.get("status"),
                "input": _clip(state.get("input")),
                "output": _clip(state.get("output", "")),
            }
        if kind == "error":
            error = message.get("error") or {}
            data = error.get("data") or {}
            return {"kind": "error", "text": _clip(data.get("message") or error.get("name", ""))}
        return {"kind": kind}
