"""The Gemini CLI adapter: ``gemini --output-format stream-json --yolo`` (the task on stdin).

Its stream-json output is one JSON object a line (gemini-cli 0.61, ``StreamJsonFormatter``):
``init`` (session, model), ``message`` (``role`` user or assistant; assistant text comes
in ``delta`` pieces), ``tool_use`` (``tool_name``, ``tool_id``, ``parameters``),
``tool_result`` (``tool_id``, ``status``, ``output`` or ``error``), ``error`` (``severity``
warning or error) and one ``result`` at the end (``status``, ``error``, and ``stats``:
``input_tokens`` counting cached ones, ``cached``, ``output_tokens``, per model).

It reaches Gemini through the rollout's egress gateway: ``GOOGLE_GEMINI_BASE_URL`` (the
API's base, without ``/v1beta``), and the gateway's placeholder as ``GEMINI_API_KEY``,
which the Gemini client sends in ``x-goog-api-key``. With a base URL set the CLI would
pick its "gateway" sign-in, which headless runs refuse, so a settings file in the
sandbox's private home chooses the API key sign-in, and turns off what needs the
internet (update checks, usage statistics) or a person (folder trust).
"""

from __future__ import annotations

import json
from typing import Any

from envpools_cli.server.agents.adapters import missing_credential
from envpools_cli.server.agents.base import AgentContext, Harness, Invocation, bounded, json_line
from envpools_cli.server.agents.transcripts import GeminiCliTranscript

__all__ = ["GeminiCliHarness"]

SETTINGS: dict[str, Any] = {
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "ide": {"enabled": False},
}
_SETTINGS_ENV = "ENVPOOLS_GEMINI_SETTINGS"
# The settings go in through the environment (no file to stage), and the variable is
# dropped before gemini starts.
_START = (
    'mkdir -p "$HOME/.gemini" && printf "%s" "$ENVPOOLS_GEMINI_SETTINGS" '
    '> "$HOME/.gemini/settings.json" && unset ENVPOOLS_GEMINI_SETTINGS && exec gemini "$@"'
)


class GeminiCliHarness(Harness):
    name = "gemini-cli"
    binary = "gemini"
    description = "Google Gemini CLI (gemini --output-format stream-json)"
    models = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview")
    accepts_any_model = True
    log_name = "gemini-cli.txt"
    default_model = "gemini-2.5-pro"
    transcript_class = GeminiCliTranscript

    def __init__(self) -> None:
        super().__init__()
        self.usage.provider = "gemini"
        self._text: list[str] = []
        """The assistant's text since its last tool call: the final answer at the end."""

    def providers(self, ctx: AgentContext) -> list[str]:
        return ["gemini"]

    def required_secret(self, ctx: AgentContext) -> str | None:
        return missing_credential(ctx, "gemini")

    def invocation(self, ctx: AgentContext) -> Invocation:
        model = ctx.model_id or self.default_model
        self.usage.model = model
        env = {
            _SETTINGS_ENV: json.dumps(SETTINGS),
            "GOOGLE_GEMINI_BASE_URL": ctx.gateway_urls.get("gemini", ""),
            "GEMINI_API_KEY": ctx.placeholder,
            "GEMINI_CLI_NO_RELAUNCH": "true",
            "NO_BROWSER": "true",
        }
        command = [
            "/bin/sh",
            "-c",
            _START,
            "gemini",
            "--model",
            model,
            "--output-format",
            "stream-json",
            "--yolo",
        ]
        # The instruction on stdin: a run without a terminal is headless.
        return Invocation(command, env=env, stdin=ctx.instruction.encode())

    def on_line(self, line: str) -> dict[str, Any]:
        message = json_line(line)
        if message is None:
            return self.plain(line)
        kind = str(message.get("type", "unknown"))
        if kind == "init":
            if message.get("model"):
                self.usage.model = str(message["model"])
            return {"kind": "system", "subtype": "init", "model": message.get("model")}
        if kind == "message":
            if message.get("role") != "assistant":
                return {"kind": "user"}
            text = str(message.get("content") or "")
            self._text.append(text)
            self.progress = True
            return {"kind": "message", "text": bounded(text), "delta": bool(message.get("delta"))}
        if kind == "tool_use":
            self.progress = True
            self._text.clear()
            return {
                "kind": "tool_call",
                "tool": message.get("tool_name"),
                "call_id": message.get("tool_id"),
                "input": bounded(message.get("parameters")),
            }
        if kind == "tool_result":
            error = message.get("error") or {}
            output = message.get("output")
            return {
                "kind": "tool_result",
                "call_id": message.get("tool_id"),
                "is_error": message.get("status") == "error",
                "output": bounded(output if output is not None else error.get("message", "")),
            }
        if kind == "error":
            text = str(message.get("message", ""))
            if message.get("severity") == "error":
                return self.error(text)
            return {"kind": "warning", "text": bounded(text)}
        if kind == "result":
            return self._result(message)
        return {"kind": kind}

    def _result(self, message: dict[str, Any]) -> dict[str, Any]:
        stats = message.get("stats") or {}
        self.usage.input_tokens = int(stats.get("input_tokens") or 0)
        self.usage.output_tokens = int(stats.get("output_tokens") or 0)
        self.usage.cache_tokens = int(stats.get("cached") or 0)
        models = stats.get("models")
        if isinstance(models, dict) and len(models) == 1:
            self.usage.model = str(next(iter(models)))
        self.progress = self.progress or bool(self.usage.output_tokens)
        is_error = message.get("status") == "error"
        error = message.get("error") or {}
        text = str(error.get("message") or "") if is_error else "".join(self._text)
        if is_error:
            self.errors.append(text)
        return {
            "kind": "result",
            "is_error": is_error,
            "text": bounded(text),
            "tool_calls": stats.get("tool_calls"),
        }
