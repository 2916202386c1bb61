"""The Qwen Code adapter: ``qwen --output-format stream-json --yolo`` (the task on stdin).

Qwen Code is a fork of the Gemini CLI whose stream-json output follows Claude Code's
(``system`` init, ``assistant`` and ``user`` messages with content blocks, one ``result``
line), so it is read by the Claude Code parser, with two differences: its ``input_tokens``
already count the cached ones (the OpenAI convention of the APIs it calls), and one
``assistant`` line may hold text and a tool call together (its transcript,
``QwenCodeTranscript``, reads each such line as one whole message).

It calls an OpenAI-compatible chat completions endpoint (``--auth-type openai``) given by
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``: the rollout's egress gateway and its
placeholder. The model is ``provider/model``; a bare id is a Model Studio (DashScope)
model, where the Qwen models live.
"""

from __future__ import annotations

from typing import Any

from envpools_cli.server.agents.adapters import ClaudeCodeHarness, missing_credential
from envpools_cli.server.agents.base import AgentContext, Invocation, bounded
from envpools_cli.server.agents.transcripts import QwenCodeTranscript

__all__ = ["QwenCodeHarness"]

DEFAULT_PROVIDER = "dashscope"
_API_ERROR = "[API Error"


class QwenCodeHarness(ClaudeCodeHarness):
    name = "qwen-code"
    binary = "qwen"
    description = "Qwen Code (qwen --output-format stream-json)"
    models = ("qwen3-coder-flash", "qwen3-coder-plus")
    accepts_any_model = True
    model_format = "provider/model, OpenAI-compatible (a bare id means dashscope/<id>)"
    log_name = "qwen-code.txt"
    default_model = "qwen3-coder-plus"
    transcript_class = QwenCodeTranscript

    def __init__(self) -> None:
        super().__init__()
        self.usage.provider = DEFAULT_PROVIDER

    @classmethod
    def split_model(cls, model_id: str | None) -> tuple[str, str]:
        model = model_id or cls.default_model
        if "/" in model:
            prefix, _, rest = model.partition("/")
            return prefix, rest
        return DEFAULT_PROVIDER, model

    def providers(self, ctx: AgentContext) -> list[str]:
        return [self.split_model(ctx.model_id)[0]]

    def probe(self, ctx: AgentContext) -> tuple[str, str] | None:
        return self.split_model(ctx.model_id)

    def required_secret(self, ctx: AgentContext) -> str | None:
        return missing_credential(ctx, self.split_model(ctx.model_id)[0])

    def invocation(self, ctx: AgentContext) -> Invocation:
        provider_id, model = self.split_model(ctx.model_id)
        self.usage.provider = provider_id
        self.usage.model = model
        env = {
            "OPENAI_BASE_URL": ctx.gateway_urls.get(provider_id, ""),
            "OPENAI_API_KEY": ctx.placeholder,
            "OPENAI_MODEL": model,
            "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1",
            "QWEN_USAGE_STATISTICS_ENABLED": "false",
        }
        command = [
            "qwen",
            "--auth-type",
            "openai",
            "--model",
            model,
            "--output-format",
            "stream-json",
            "--yolo",
            "--chat-recording=false",
        ]
        # The instruction on stdin: headless without a prompt argument.
        return Invocation(command, env=env, stdin=ctx.instruction.encode())

    @staticmethod
    def prompt_tokens(usage: dict[str, Any]) -> int:
        return int(usage.get("input_tokens") or 0)

    def _assistant(self, message: dict[str, Any]) -> dict[str, Any]:
        blocks = [b for b in (message.get("message") or {}).get("content") or [] if b]
        texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        if len(blocks) == 1 and texts and str(texts[0].get("text", "")).startswith(_API_ERROR):
            # A provider failure is said as the assistant's text: it is no progress.
            return self.error(str(texts[0]["text"]))
        data = super()._assistant(message)
        calls = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        if calls and data.get("kind") != "tool_call":
            # Text first, then the call, in one line: the call is the event, with the text.
            call = calls[0]
            text = "".join(str(b.get("text", "")) for b in texts)
            self.progress = True
            data = {
                "kind": "tool_call",
                "tool": call.get("name"),
                "call_id": call.get("id"),
                "input": bounded(call.get("input")),
                "text": bounded(text),
            }
        return data
