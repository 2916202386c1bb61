"""Harness registry: which agents the local backend can run, and why not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envpools_cli.server.agents.adapters import ClaudeCodeHarness, CodexHarness, OpenCodeHarness
from envpools_cli.server.agents.base import AgentContext, Harness, Invocation, TokenUsage
from envpools_cli.server.agents.builtin import NopHarness, OracleHarness

if TYPE_CHECKING:
    from envpools_cli.server.agents.installs import AgentTools

__all__ = [
    "HARNESSES",
    "AgentContext",
    "Harness",
    "Invocation",
    "TokenUsage",
    "describe_harnesses",
    "harness_class",
]

HARNESSES: dict[str, type[Harness]] = {
    cls.name: cls
    for cls in (OracleHarness, NopHarness, ClaudeCodeHarness, CodexHarness, OpenCodeHarness)
}


def harness_class(name: str) -> type[Harness] | None:
    return HARNESSES.get(name)


def describe_harnesses(tools: AgentTools) -> list[dict[str, Any]]:
    """Each harness, whether it runs here (tried in the sandbox) and which models it takes."""
    described = []
    for name, cls in HARNESSES.items():
        status = tools.availability(name, cls.binary)
        entry: dict[str, Any] = {
            "name": name,
            "available": status.available,
            "description": cls.description,
            "models": list(cls.models) if cls.models else None,
            "accepts_any_model": cls.accepts_any_model,
        }
        if cls.model_format:
            entry["model_format"] = cls.model_format
        if cls.binary:
            entry["version"] = status.version
            entry["source"] = status.source
        if status.reason:
            entry["reason"] = status.reason
        described.append(entry)
    return described
