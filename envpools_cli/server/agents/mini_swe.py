"""The mini-swe-agent adapter: its own ``mini`` command, with every message as a JSON line.

mini-swe-agent (a Python package, installed in a venv of its own: ``python_env.py``) has
no machine-readable output of its own: it prints with Rich and saves its trajectory to a
file. So the adapter runs the real ``mini`` command through the launcher's ``--python``
with a few lines in front (``STREAM``): mini's own ``DefaultAgent``, whose every message
(the model's answers with their token usage, each command's output, the exit) is also
printed as one JSON line, chosen with mini's ``--agent-class``; with each answer's
response id and time, those lines are the trajectory's steps (``MiniSweAgentTranscript``).
The trajectory mini saves goes to ``/logs/agent/mini-swe-agent.trajectory.json``, an
artifact of the rollout.

mini calls its model through LiteLLM, so any provider works: the model is LiteLLM's
``provider/model`` (``openai/``, ``anthropic/``, ``openrouter/``; any other provider id
is called as an OpenAI-compatible endpoint). Its base URL is the rollout's egress
gateway (``model.model_kwargs.api_base``) and its key the gateway's placeholder, in the
variable LiteLLM reads for that provider.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from envpools_cli.server.agents.adapters import missing_credential
from envpools_cli.server.agents.base import AgentContext, Harness, Invocation, bounded, json_line
from envpools_cli.server.agents.transcripts import MiniSweAgentTranscript

__all__ = ["STREAM", "MiniSweAgentHarness"]

TRAJECTORY = "/logs/agent/mini-swe-agent.trajectory.json"

STREAM = r"""
import json, sys
from minisweagent.agents.default import DefaultAgent


def emit(message):
    extra = message.get("extra") or {}
    response = extra.get("response") if isinstance(extra.get("response"), dict) else {}
    event = {
        "type": "envpools.mini",
        "role": message.get("role"),
        "content": message.get("content"),
        "tool_calls": message.get("tool_calls"),
        "tool_call_id": message.get("tool_call_id"),
        "reasoning": message.get("reasoning_content"),
        "usage": response.get("usage"),
        "model": response.get("model"),
        "response_id": response.get("id"),
        "timestamp": extra.get("timestamp"),
        "cost": extra.get("cost"),
        "returncode": extra.get("returncode"),
        "exit_status": extra.get("exit_status"),
        "interrupt": extra.get("interrupt_type"),
    }
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


class StreamingAgent(DefaultAgent):
    def add_messages(self, *messages):
        added = super().add_messages(*messages)
        for message in messages:
            emit(message)
        return added


sys.argv[0] = "mini-swe-agent"
from minisweagent.run.mini import app

app()
"""
"""Runs in the sandbox, as ``__main__`` (so ``--agent-class __main__.StreamingAgent``)."""

_LITELLM_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}
"""Providers LiteLLM calls natively, and the variable it reads their key from."""
_OPENAI_COMPATIBLE_PATH = {"gemini": "/v1beta/openai"}
"""Where a provider's OpenAI-compatible API lives below its base URL, when not at it."""


class MiniSweAgentHarness(Harness):
    name = "mini-swe-agent"
    binary = "mini-swe-agent"
    description = "mini-swe-agent (mini, LiteLLM; every message as a JSON line)"
    models = ("anthropic/claude-sonnet-4-5", "openai/gpt-5-mini", "openai/gpt-5.2")
    accepts_any_model = True
    model_format = (
        "provider/model as LiteLLM names it (openai/, anthropic/, openrouter/; any other "
        "provider is called as OpenAI-compatible; a bare id means openai/<id>)"
    )
    log_name = "mini-swe-agent.txt"
    default_model = "openai/gpt-5-mini"
    transcript_class = MiniSweAgentTranscript

    def __init__(self) -> None:
        super().__init__()
        self.usage.provider = "openai"
        self._cost = 0.0
        self._last_text = ""

    @classmethod
    def split_model(cls, model_id: str | None) -> tuple[str, str]:
        model = model_id or cls.default_model
        if "/" in model:
            prefix, _, rest = model.partition("/")
            return prefix, rest
        return "openai", model

    def providers(self, ctx: AgentContext) -> list[str]:
        return [self.split_model(ctx.model_id)[0]]

    def required_secret(self, ctx: AgentContext) -> str | None:
        return missing_credential(ctx, self.split_model(ctx.model_id)[0])

    def invocation(self, ctx: AgentContext) -> Invocation:
        provider_id, model = self.split_model(ctx.model_id)
        self.usage.provider = provider_id
        self.usage.model = model
        base_url = ctx.gateway_urls.get(provider_id, "")
        if provider_id in _LITELLM_KEYS:
            litellm_model, key_name = f"{provider_id}/{model}", _LITELLM_KEYS[provider_id]
        else:
            litellm_model, key_name = f"openai/{model}", _LITELLM_KEYS["openai"]
            base_url += _OPENAI_COMPATIBLE_PATH.get(provider_id, "")
        env = {
            key_name: ctx.placeholder,
            "MSWEA_CONFIGURED": "true",
            "MSWEA_SILENT_STARTUP": "1",
            # LiteLLM prices only the models it knows; the price table does the others.
            "MSWEA_COST_TRACKING": "ignore_errors",
            # Nothing but the provider is reachable: no price list download at start.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PAGER": "cat",
        }
        command = [
            "mini-swe-agent",
            "--python",
            "-I",
            "-c",
            STREAM,
            "--model",
            litellm_model,
            "--agent-class",
            "__main__.StreamingAgent",
            "--environment-class",
            "local",
            "--yolo",
            "--exit-immediately",
            "--cost-limit",
            "0",
            "--output",
            TRAJECTORY,
            "--config",
            "mini.yaml",
            "--config",
            "model.model_kwargs.api_base=" + json.dumps(base_url),
            "--task",
            ctx.instruction,
        ]
        return Invocation(command, env=env)

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None or message.get("type") != "envpools.mini":
            return self.plain(line)
        self._count(message)
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        if role == "assistant":
            return self._assistant(message, text)
        if role == "tool":
            code = message.get("returncode")
            return {
                "kind": "tool_result",
                "call_id": message.get("tool_call_id"),
                "is_error": code not in (0, None),
                "exit_code": code,
                "output": bounded(text),
            }
        if role == "exit":
            return self._exit(message, text)
        if role == "user" and message.get("interrupt"):
            return {"kind": "warning", "text": bounded(text), "reason": message.get("interrupt")}
        return {"kind": str(role or "unknown")}

    def _count(self, message: dict[str, Any]) -> None:
        usage = message.get("usage")
        if not isinstance(usage, dict):
            return
        details = usage.get("prompt_tokens_details") or {}
        self.usage.input_tokens += int(usage.get("prompt_tokens") or 0)
        self.usage.output_tokens += int(usage.get("completion_tokens") or 0)
        self.usage.cache_tokens += int(details.get("cached_tokens") or 0)
        self._cost += float(message.get("cost") or 0.0)
        # LiteLLM's own price when it knows the model; else the price table's.
        self.usage.cost_usd = self._cost or None
        self.progress = True

    def _assistant(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        self.progress = True
        content = message.get("content")
        self._last_text = text if content else self._last_text
        calls = message.get("tool_calls") or []
        if not calls:
            return {"kind": "message", "text": bounded(text)}
        call = calls[0] if isinstance(calls[0], dict) else {}
        function = call.get("function") or {}
        arguments: Any = function.get("arguments")
        with contextlib.suppress(TypeError, ValueError):
            arguments = json.loads(arguments)
        data: dict[str, Any] = {
            "kind": "tool_call",
            "tool": function.get("name"),
            "call_id": call.get("id"),
            "input": bounded(arguments),
        }
        if content:
            data["text"] = bounded(text)
        return data

    def _exit(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        status = str(message.get("exit_status") or "")
        is_error = status != "Submitted"
        if is_error:
            self.errors.append(f"{status}: {text}" if text else status)
        return {
            "kind": "result",
            "is_error": is_error,
            "subtype": status,
            "text": bounded(text.strip() or self._last_text),
        }
