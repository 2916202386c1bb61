"""The adapter interface every harness implements.

A harness turns a rollout's agent spec and task into one command run in the sandbox
(``invocation``), turns each line the command prints into the data of an ``agent``
event (``on_line``), and reports the tokens and cost it saw (``usage``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

from envpools_cli.server.tasks import HarborTask

__all__ = ["AgentContext", "Harness", "Invocation", "TokenUsage"]


@dataclass
class AgentContext:
    instruction: str
    workdir: str
    agent: dict[str, Any]
    task: HarborTask
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Credential name -> (type, value) of the rollout's organisation."""

    @property
    def model_id(self) -> str | None:
        value = self.agent.get("model_id")
        return str(value) if value else None

    def export(self, *names: str) -> tuple[dict[str, str], tuple[str, ...]]:
        """The credentials among ``names`` as environment variables, and which are secret."""
        env = {name: value for name in names if (value := self.secret(name))}
        return env, tuple(env)

    def secret(self, *names: str) -> str | None:
        """The first credential whose name or type is one of ``names``."""
        for wanted in names:
            for name, (ctype, value) in self.credentials.items():
                if wanted in (name, ctype) and value:
                    return value
        return None


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
    log_name: ClassVar[str] = "agent.txt"

    def __init__(self) -> None:
        self.usage = TokenUsage()

    @classmethod
    def availability(cls, search_path: str) -> tuple[bool, str | None]:
        if cls.binary is None:
            return True, None
        if shutil.which(cls.binary, path=search_path):
            return True, None
        return False, f"the {cls.binary!r} command is not installed on this machine"

    def invocation(self, ctx: AgentContext) -> Invocation:
        raise NotImplementedError

    def on_line(self, line: str) -> dict[str, Any]:
        return {"stream": "output", "text": line}

    def required_secret(self, ctx: AgentContext) -> str | None:
        """A message when a credential the harness needs is missing, else None."""
        return None


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


def env_name(value: str) -> bool:
    return value.replace("_", "").isalnum() and value.upper() == value and not value[0].isdigit()


def host_env(*names: str) -> dict[str, str]:
    return {name: os.environ[name] for name in names if os.environ.get(name)}
