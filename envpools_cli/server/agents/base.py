"""The adapter interface every harness implements.

A harness turns a rollout's agent spec and task into one command run in the sandbox
(``invocation``), turns each line the command prints into the data of an ``agent``
event (``on_line``), reports the tokens and cost it saw (``usage``), and keeps the steps
of the run for its trajectory (``transcript``, of its ``transcript_class``: see
``transcript.py``). The runner hands each line to ``read_line``, which does both.

A harness that talks to an LLM names the providers it needs (``providers``): the backend
opens an egress gateway to exactly those and hands the harness, in its context, the
gateway's base URL per provider and a placeholder key (see ``server/egress.py``). A
harness never sees a stored provider key.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from envpools_cli.server.agents.transcript import Transcript
from envpools_cli.server.tasks import HarborTask

__all__ = ["AgentContext", "Harness", "Invocation", "TokenUsage"]

_TAIL_LINES = 20


@dataclass
class AgentContext:
    instruction: str
    workdir: str
    agent: dict[str, Any]
    task: HarborTask | None
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Credential name -> (type, value) of the rollout's organisation."""
    gateway_urls: dict[str, str] = field(default_factory=dict)
    """Provider -> the base URL the agent uses for it (the egress gateway)."""
    placeholder: str = ""
    """The key the agent presents; the gateway swaps it for the stored one."""

    @property
    def model_id(self) -> str | None:
        value = self.agent.get("model_id")
        return str(value) if value else None

    def secret(self, *names: str) -> str | None:
        """The first credential whose name or type is one of ``names``."""
        for wanted in names:
            for name, (ctype, value) in self.credentials.items():
                if wanted in (name, ctype) and value:
                    return value
        return None

    def which(self, *names: str) -> str | None:
        """The first of ``names`` that a stored credential provides."""
        return next((name for name in names if self.secret(name)), None)


@dataclass
class Invocation:
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    network: bool = False
    bind_solution: bool = False
    secret_env: tuple[str, ...] = ()
    """Names in ``env`` whose values are secrets (redacted from logs and bundles)."""


@dataclass
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = None
    provider: str | None = None
    model: str | None = None


class Harness:
    name: ClassVar[str]
    binary: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    models: ClassVar[tuple[str, ...] | None] = None
    accepts_any_model: ClassVar[bool] = False
    model_format: ClassVar[str | None] = None
    default_model: ClassVar[str | None] = None
    """The model a rollout gets when it names none (the SDK's presets have their own)."""
    custom: ClassVar[bool] = False
    """Declared by a manifest (``envpools agents add``), not built in."""
    log_name: ClassVar[str] = "agent.txt"
    transcript_class: ClassVar[type[Transcript]] = Transcript
    probe_api: ClassVar[str | None] = None
    """The API ``agents check`` calls (None: the provider's usual one, ``probe.py``)."""
    needs_cpus: ClassVar[float | None] = None
    """What a rollout of this agent reserves at least (admission), beyond what its task
    asks: the CPU its CLI burns to start. None: the backend's default."""
    needs_memory_mb: ClassVar[int | None] = None
    """The memory its CLI holds at its peak (reserved at least; None: the default)."""

    def __init__(self) -> None:
        self.usage = TokenUsage()
        self.transcript = self.transcript_class()
        self.progress = False
        """Whether the agent got anywhere: a model answer, a tool call, tokens."""
        self.errors: list[str] = []
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        """The last plain-text lines (stderr, mostly): what a failed start said."""

    def providers(self, ctx: AgentContext) -> list[str]:
        """The LLM providers this run talks to (the egress gateway's routes)."""
        return []

    def invocation(self, ctx: AgentContext) -> Invocation:
        raise NotImplementedError

    def read_line(self, line: str) -> dict[str, Any]:
        """One line the agent printed: the data of its ``agent`` event, and a transcript line."""
        data = self.on_line(line)
        self.transcript.feed(line)
        return data

    def on_line(self, line: str) -> dict[str, Any]:
        return self.plain(line)

    def plain(self, line: str) -> dict[str, Any]:
        """A line that is not the agent's JSON: kept for the failure message."""
        if line.strip():
            self.tail.append(line)
        return {"stream": "output", "text": line}

    def error(self, text: str) -> dict[str, Any]:
        if text:
            self.errors.append(text)
        return {"kind": "error", "text": text}

    def diagnose(self) -> str | None:
        """What to do, when the agent's own last words say it (else None)."""
        for line in reversed(self.tail):
            if "HOME" in line and ("does not exist" in line or "No such file" in line):
                return (
                    "the agent's home folder does not exist in the sandbox: the task sets "
                    "it (an ENV line in environment/Dockerfile, e.g. HOME or CODEX_HOME); "
                    "remove that line, the agent keeps its state in the sandbox's own home"
                )
        return None

    def required_secret(self, ctx: AgentContext) -> str | None:
        """A message when a credential the harness needs is missing, else None."""
        return None

    def probe(self, ctx: AgentContext) -> tuple[str, str] | None:
        """The provider and the model id (as the provider's API knows it) a rollout with
        ``ctx``'s model calls, for ``agents check``; None when it calls none.

        By default what ``invocation`` notes in ``usage`` (or the first provider and the
        model asked for); harnesses that map model ids say so themselves.
        """
        providers = self.providers(ctx)
        if not providers:
            return None
        ctx.gateway_urls = {name: f"http://envpools-check.invalid/{name}" for name in providers}
        ctx.placeholder = "sk-envpools-check"
        self.invocation(ctx)
        model = self.usage.model or ctx.model_id
        if not model:
            return None
        chosen = self.usage.provider if self.usage.provider in providers else providers[0]
        return chosen, model


def json_line(line: str) -> dict[str, Any] | None:
    """The line as a JSON object, or None (agents mix plain text into their JSON output)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def bounded(value: Any, limit: int = 4000) -> Any:
    """``value`` as JSON data if it is small, else its JSON text clipped to ``limit``."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return bounded(str(value), limit)
    return value if len(text) <= limit else text[:limit] + "…"
