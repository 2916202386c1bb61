"""Harness registry: which agents the local backend can run, and why not."""

from __future__ import annotations

from typing import Any

from envpools_cli.server.harnesses.agents import ClaudeCodeHarness, CodexHarness, OpenCodeHarness
from envpools_cli.server.harnesses.base import AgentContext, Harness, Invocation, TokenUsage
from envpools_cli.server.harnesses.builtin import NopHarness, OracleHarness

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


def describe_harnesses(search_path: str) -> list[dict[str, Any]]:
    described = []
    for name, cls in HARNESSES.items():
        available, reason = cls.availability(search_path)
        entry: dict[str, Any] = {
            "name": name,
            "available": available,
            "description": cls.description,
            "models": list(cls.models) if cls.models else None,
        }
        if reason:
            entry["reason"] = reason
        described.append(entry)
    return described
