"""Adapters for the coding-agent CLIs: Claude Code, Codex and OpenCode.

Each runs the real CLI headless with machine-readable output, as Harbor does, and turns
that output into ``agent`` events and token counts (reference/HARBOR_AND_HARNESSES.md §2).

Each reaches its provider only through the rollout's egress gateway, pointed there the
way that CLI wants it: codex through a model provider given with ``-c`` (``base_url``
with ``/v1``, WebSockets off), Claude Code through ``ANTHROPIC_BASE_URL`` (no ``/v1``),
OpenCode through ``provider.<id>.options.baseURL`` in its config content (with ``/v1``).
The key each CLI holds is the gateway's placeholder. Their own state (codex home,
opencode data, claude config) lives in the sandbox's private home, which is discarded:
it is never an artifact.
"""

from __future__ import annotations

import json
from typing import Any

from envpools_cli.models import PRESET_MODELS
from envpools_cli.server.agents.base import (
    AgentContext,
    Harness,
    Invocation,
    bounded,
    json_line,
)
from envpools_cli.server.agents.transcripts import (
    ClaudeCodeTranscript,
    CodexTranscript,
    OpenCodeTranscript,
)
from envpools_cli.server.sandbox.egress import PROVIDERS, provider

_ANTHROPIC_IDS = {"claude-sonnet-4.5": "claude-sonnet-4-5"}
"""Preset ids (the SDK's spelling) -> the id the Anthropic API knows."""


def missing_credential(ctx: AgentContext, name: str) -> str | None:
    """What to store when provider ``name``'s key (or, with no default, base URL) is missing."""
    wanted = provider(name)
    if ctx.which(*wanted.key_names):
        if wanted.upstream(ctx.secret(wanted.base_url_name)) is None:
            return (
                f"provider {name!r} has no default endpoint: store its base URL as a "
                f"{wanted.base_url_name} credential (envpools credentials store)"
            )
        return None
    name = wanted.key_names[0]
    return f"store a {name} credential (envpools credentials store {name} --type {name})"


class ClaudeCodeHarness(Harness):
    name = "claude-code"
    binary = "claude"
    description = "Anthropic Claude Code (claude -p --output-format stream-json)"
    models = tuple(sorted(PRESET_MODELS["claude-code"]))
    accepts_any_model = True
    log_name = "claude-code.txt"
    transcript_class = ClaudeCodeTranscript

    def __init__(self) -> None:
        super().__init__()
        self._messages: dict[str, dict[str, int]] = {}
        self._final = False
        self.usage.provider = "anthropic"

    def providers(self, ctx: AgentContext) -> list[str]:
        return ["anthropic"]

    def probe(self, ctx: AgentContext) -> tuple[str, str] | None:
        chosen = ctx.model_id or "claude-sonnet-4.5"
        return "anthropic", _ANTHROPIC_IDS.get(chosen, chosen)

    def required_secret(self, ctx: AgentContext) -> str | None:
        return missing_credential(ctx, "anthropic")

    def invocation(self, ctx: AgentContext) -> Invocation:
        chosen = ctx.model_id or "claude-sonnet-4.5"
        model = _ANTHROPIC_IDS.get(chosen, chosen)
        self.usage.model = chosen
        key_name = ctx.which(*PROVIDERS["anthropic"].key_names) or "ANTHROPIC_API_KEY"
        env = {
            "IS_SANDBOX": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_BASE_URL": ctx.gateway_urls.get("anthropic", ""),
            key_name: ctx.placeholder,
        }
        if ctx.secret("ANTHROPIC_BASE_URL"):
            # A gateway's model names are its own: every role uses the chosen one.
            for role in ("SONNET", "OPUS", "HAIKU"):
                env[f"ANTHROPIC_DEFAULT_{role}_MODEL"] = model
            env["CLAUDE_CODE_SUBAGENT_MODEL"] = model
        command = [
            "claude",
            "--verbose",
            "--output-format=stream-json",
            "--print",
            "--permission-mode=bypassPermissions",
            "--model",
            model,
        ]
        return Invocation(command, env=env, stdin=ctx.instruction.encode())

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return self.plain(line)
        kind = message.get("type")
        if kind == "assistant":
            return self._assistant(message)
        if kind == "user":
            return self._tool_results(message)
        if kind == "result":
            return self._result(message)
        if kind == "system":
            if message.get("subtype") == "api_retry":
                return self._retry(message)
            if message.get("subtype") == "init" and message.get("model"):
                self.usage.model = str(message["model"])
            return {
                "kind": "system",
                "subtype": message.get("subtype"),
                "model": message.get("model"),
            }
        return {"kind": str(kind or "unknown"), "raw": bounded(message, 1000)}

    @staticmethod
    def _retry(message: dict[str, Any]) -> dict[str, Any]:
        """Claude Code retries a failed API call: what failed, which attempt, when next."""
        status = message.get("error_status")
        error = message.get("error")
        if isinstance(error, dict):
            error = error.get("message") or error.get("type") or json.dumps(error)
        reason = f"HTTP {status}" if status is not None else "no response (connection error)"
        if error:
            reason += f": {error}"
        return {
            "kind": "retry",
            "subtype": "api_retry",
            "attempt": message.get("attempt"),
            "max_retries": message.get("max_retries"),
            "retry_delay_ms": message.get("retry_delay_ms"),
            "error_status": status,
            "text": bounded(f"API call failed ({reason}); retry {message.get('attempt')}", 1000),
        }

    def _assistant(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message.get("message") or {}
        usage = body.get("usage") or {}
        if body.get("model"):
            self.usage.model = str(body["model"])
        if body.get("id") and usage and not self._final:
            # One line per content block repeats the same usage: keep the last per id.
            self._messages[str(body["id"])] = {
                "input": self.prompt_tokens(usage),
                "output": int(usage.get("output_tokens") or 0),
                "cache": int(usage.get("cache_read_input_tokens") or 0),
            }
            self._sum_messages()
        if message.get("error"):
            return self.error(str(message["error"]))
        for block in body.get("content") or []:
            if block.get("type") == "text":
                self.progress = True
                return {"kind": "message", "text": bounded(block.get("text", ""))}
            if block.get("type") == "tool_use":
                self.progress = True
                return {
                    "kind": "tool_call",
                    "tool": block.get("name"),
                    "call_id": block.get("id"),
                    "input": bounded(block.get("input")),
                }
            if block.get("type") == "thinking":
                return {"kind": "thinking", "text": bounded(block.get("thinking", ""))}
        return {"kind": "assistant"}

    def _tool_results(self, message: dict[str, Any]) -> dict[str, Any]:
        for block in (message.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                if isinstance(content, list):
                    content = "\n".join(
                        str(part.get("text", "")) for part in content if isinstance(part, dict)
                    )
                return {
                    "kind": "tool_result",
                    "call_id": block.get("tool_use_id"),
                    "is_error": bool(block.get("is_error")),
                    "output": bounded(content if content is not None else ""),
                }
        return {"kind": "user"}

    def _result(self, message: dict[str, Any]) -> dict[str, Any]:
        usage = message.get("usage") or {}
        self._final = True
        self.usage.input_tokens = self.prompt_tokens(usage)
        self.usage.output_tokens = int(usage.get("output_tokens") or 0)
        self.usage.cache_tokens = int(usage.get("cache_read_input_tokens") or 0)
        if isinstance(message.get("total_cost_usd"), int | float) and (
            message["total_cost_usd"] or not self.usage.input_tokens
        ):
            self.usage.cost_usd = float(message["total_cost_usd"])
        models = message.get("modelUsage")
        if isinstance(models, dict) and len(models) == 1:
            self.usage.model = str(next(iter(models)))
        is_error = bool(message.get("is_error"))
        text = message.get("result") or "; ".join(map(str, message.get("errors") or []))
        if is_error:
            self.errors.append(str(text))
        return {
            "kind": "result",
            "is_error": is_error,
            "subtype": message.get("subtype"),
            "text": bounded(text),
            "num_turns": message.get("num_turns"),
        }

    @staticmethod
    def prompt_tokens(usage: dict[str, Any]) -> int:
        """All prompt tokens of a usage block: Anthropic counts cache reads and writes apart."""
        return (
            int(usage.get("input_tokens") or 0)
            + int(usage.get("cache_read_input_tokens") or 0)
            + int(usage.get("cache_creation_input_tokens") or 0)
        )

    def _sum_messages(self) -> None:
        self.usage.input_tokens = sum(m["input"] for m in self._messages.values())
        self.usage.output_tokens = sum(m["output"] for m in self._messages.values())
        self.usage.cache_tokens = sum(m["cache"] for m in self._messages.values())


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class CodexHarness(Harness):
    name = "codex"
    binary = "codex"
    description = "OpenAI Codex CLI (codex exec --json)"
    models = tuple(sorted(PRESET_MODELS["codex"]))
    accepts_any_model = True
    log_name = "codex.txt"
    transcript_class = CodexTranscript
    probe_api = "responses"  # the codex models answer on the Responses API only

    def __init__(self) -> None:
        super().__init__()
        self.usage.provider = "openai"

    def providers(self, ctx: AgentContext) -> list[str]:
        return ["openai"]

    def required_secret(self, ctx: AgentContext) -> str | None:
        return missing_credential(ctx, "openai")

    def invocation(self, ctx: AgentContext) -> Invocation:
        model = ctx.model_id or "gpt-5.2-codex"
        self.usage.model = model
        # A model provider of our own: codex's built-in one would try a WebSocket first,
        # and ignores OPENAI_BASE_URL. The key is read from the environment, not argv.
        gateway = (
            "{name="
            + _toml_string("envpools gateway")
            + ", base_url="
            + _toml_string(ctx.gateway_urls.get("openai", ""))
            + ', env_key="CODEX_API_KEY", wire_api="responses", supports_websockets=false}'
        )
        command = [
            "codex",
            "exec",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "-c",
            "model_provider=envpools",
            "-c",
            f"model_providers.envpools={gateway}",
            # Nothing but the provider is reachable: telemetry export on exit would wait
            # seconds for ab.chatgpt.com, and plugin or update checks fail anyway.
            "-c",
            "analytics.enabled=false",
            "-c",
            "features.plugins=false",
            "-c",
            "check_for_update_on_startup=false",
            "--model",
            model,
            "--json",
            "--",
            ctx.instruction,
        ]
        return Invocation(command, env={"CODEX_API_KEY": ctx.placeholder})

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return self.plain(line)
        kind = str(message.get("type", "unknown"))
        if kind == "turn.completed":
            usage = message.get("usage") or {}
            # A running total for the thread: the last one is the run's total.
            self.usage.input_tokens = int(usage.get("input_tokens") or 0)
            self.usage.output_tokens = int(usage.get("output_tokens") or 0)
            self.usage.cache_tokens = int(usage.get("cached_input_tokens") or 0)
            self.progress = self.progress or bool(self.usage.output_tokens)
            return {"kind": "turn_completed", "usage": usage}
        if kind.startswith("item."):
            return self._item(kind, message.get("item") or {})
        if kind == "turn.failed":
            error = message.get("error") or {}
            return self.error(str(error.get("message", "")))
        if kind == "error":
            # "Reconnecting... n/5" lines are retries, not the end.
            text = str(message.get("message", ""))
            return {"kind": "retry" if text.startswith("Reconnecting") else "error", "text": text}
        return {"kind": kind}

    def _item(self, kind: str, item: dict[str, Any]) -> dict[str, Any]:
        item_type = item.get("type")
        done = kind == "item.completed"
        if item_type == "agent_message":
            self.progress = True
            return {"kind": "message", "text": bounded(item.get("text", ""))}
        if item_type == "reasoning":
            return {"kind": "thinking", "text": bounded(item.get("text", ""))}
        if item_type == "command_execution":
            self.progress = True
            data: dict[str, Any] = {
                "kind": "tool_result" if done else "tool_call",
                "tool": "shell",
                "call_id": item.get("id"),
                "input": {"command": bounded(item.get("command", ""))},
                "status": item.get("status"),
            }
            if done:
                data["exit_code"] = item.get("exit_code")
                data["output"] = bounded(item.get("aggregated_output", ""))
            return data
        if item_type == "mcp_tool_call":
            self.progress = True
            return {
                "kind": "tool_result" if done else "tool_call",
                "tool": f"{item.get('server')}.{item.get('tool')}",
                "call_id": item.get("id"),
                "input": bounded(item.get("arguments")),
                "output": bounded(item.get("result") or item.get("error") or ""),
                "status": item.get("status"),
            }
        if item_type == "file_change":
            self.progress = True
            return {"kind": "file_change", "changes": bounded(item.get("changes"))}
        if item_type == "error":
            return {"kind": "warning", "text": bounded(item.get("message", ""))}
        return {"kind": str(item_type or kind), "status": item.get("status")}


_OPENCODE_KNOWN = {"anthropic", "openai", "openrouter", "google", "groq", "mistral", "xai"}
"""Providers OpenCode ships an SDK for; any other id is treated as OpenAI-compatible."""


class OpenCodeHarness(Harness):
    name = "opencode"
    binary = "opencode"
    description = "OpenCode (opencode run --format json)"
    models = tuple(sorted(PRESET_MODELS["opencode"]))
    accepts_any_model = True
    model_format = "provider/model (a bare id means anthropic/<id>)"
    log_name = "opencode.txt"
    transcript_class = OpenCodeTranscript
    # Measured here (a 2-core VM, a two-call session, its own cgroup): Bun with a fresh
    # home burns 13-17 s of CPU and peaks at 470-700 MB resident; claude-code (1.5 s,
    # 140 MB) and codex (0.7 s, 40 MB) fit the defaults. At the default CPU overcommit
    # (8 per core) 4 cpus is half a core, so a 2-core machine starts 4 at once.
    needs_cpus = 4.0
    needs_memory_mb = 1024

    def __init__(self) -> None:
        super().__init__()
        self.usage.provider = "anthropic"
        self._cost = 0.0

    @staticmethod
    def split_model(model_id: str | None) -> tuple[str, str]:
        model = model_id or "claude-sonnet-4.5"
        if "/" in model:
            prefix, _, rest = model.partition("/")
            return prefix, rest
        return "anthropic", _ANTHROPIC_IDS.get(model, model)

    def providers(self, ctx: AgentContext) -> list[str]:
        return [self.split_model(ctx.model_id)[0]]

    def probe(self, ctx: AgentContext) -> tuple[str, str] | None:
        return self.split_model(ctx.model_id)

    def required_secret(self, ctx: AgentContext) -> str | None:
        return missing_credential(ctx, self.split_model(ctx.model_id)[0])

    def invocation(self, ctx: AgentContext) -> Invocation:
        provider_id, model = self.split_model(ctx.model_id)
        self.usage.model = ctx.model_id or "claude-sonnet-4.5"
        self.usage.provider = provider_id
        base_url = ctx.gateway_urls.get(provider_id, "")
        if provider_id == "anthropic":
            base_url += "/v1"  # the AI SDK's Anthropic provider wants /v1, the API's base not
        entry: dict[str, Any] = {
            "options": {"baseURL": base_url, "apiKey": ctx.placeholder},
            "models": {model: {"name": model}},
        }
        if provider_id not in _OPENCODE_KNOWN:
            entry.update({"npm": "@ai-sdk/openai-compatible", "name": provider_id})
        config = {
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
            "provider": {provider_id: entry},
        }
        env = {
            "OPENCODE_CONFIG_CONTENT": json.dumps(config),
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "OPENCODE_FAKE_VCS": "git",
        }
        command = [
            "opencode",
            "run",
            f"--model={provider_id}/{model}",
            "--format=json",
            "--dangerously-skip-permissions",
            "--print-logs",
            "--log-level=ERROR",
            "--",
            ctx.instruction,
        ]
        return Invocation(command, env=env)

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return self.plain(line)
        kind = str(message.get("type", "unknown"))
        part = message.get("part") or {}
        if kind == "step_finish":
            tokens = part.get("tokens") or {}
            cache = tokens.get("cache") or {}
            self.usage.input_tokens += int(tokens.get("input") or 0) + int(cache.get("read") or 0)
            self.usage.output_tokens += int(tokens.get("output") or 0)
            self.usage.cache_tokens += int(cache.get("read") or 0)
            self._cost += float(part.get("cost") or 0.0)
            # OpenCode prices known models itself; for others the price table does.
            self.usage.cost_usd = self._cost or None
            self.progress = True
            return {"kind": "step_finish", "reason": part.get("reason"), "tokens": tokens}
        if kind == "text":
            self.progress = True
            return {"kind": "message", "text": bounded(part.get("text", ""))}
        if kind == "reasoning":
            return {"kind": "thinking", "text": bounded(part.get("text", ""))}
        if kind == "tool_use":
            self.progress = True
            state = part.get("state") or {}
            return {
                "kind": "tool_call",
                "tool": part.get("tool"),
                "call_id": part.get("callID"),
                "status": state.get("status"),
                "input": bounded(state.get("input")),
                "output": bounded(state.get("output") or state.get("error") or ""),
            }
        if kind == "error":
            error = message.get("error") or {}
            data = error.get("data") or {}
            return self.error(str(data.get("message") or error.get("name", "")))
        return {"kind": kind}
