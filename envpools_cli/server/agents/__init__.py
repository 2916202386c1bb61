"""Harness registry: which agents the local backend can run, and why not.

The built-ins (``HARNESSES``) and the custom agents added to a backend's agents dir with
``envpools agents add`` (``custom.py``, declared by a manifest: ``manifest.py``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envpools_cli.models import HARNESS_ALIASES, PRESET_DEFAULT_MODELS
from envpools_cli.server.agents.adapters import ClaudeCodeHarness, CodexHarness, OpenCodeHarness
from envpools_cli.server.agents.base import AgentContext, Harness, Invocation, TokenUsage
from envpools_cli.server.agents.builtin import NopHarness, OracleHarness
from envpools_cli.server.agents.custom import custom_agents
from envpools_cli.server.agents.gemini import GeminiCliHarness
from envpools_cli.server.agents.manifest import manifest_harness
from envpools_cli.server.agents.mini_swe import MiniSweAgentHarness
from envpools_cli.server.agents.qwen import QwenCodeHarness

if TYPE_CHECKING:
    from envpools_cli.server.agents.installs import AgentTools

__all__ = [
    "HARNESSES",
    "RESERVED_NAMES",
    "AgentContext",
    "Harness",
    "Invocation",
    "TokenUsage",
    "default_providers",
    "describe_harnesses",
    "harness_class",
    "harness_classes",
]

HARNESSES: dict[str, type[Harness]] = {
    cls.name: cls
    for cls in (
        OracleHarness,
        NopHarness,
        ClaudeCodeHarness,
        CodexHarness,
        OpenCodeHarness,
        GeminiCliHarness,
        QwenCodeHarness,
        MiniSweAgentHarness,
    )
}
"""The built-in harnesses."""

RESERVED_NAMES = frozenset(HARNESSES) | frozenset(HARNESS_ALIASES)
"""Names a custom agent cannot take."""

_PROBES = 4
"""Agents probed at once (each probe starts a sandbox)."""


def harness_classes(agents_dir: Path | None) -> dict[str, type[Harness]]:
    """The built-ins, then the custom agents added to ``agents_dir``."""
    found = dict(HARNESSES)
    if agents_dir is not None:
        for name, agent in custom_agents(agents_dir, RESERVED_NAMES)[0].items():
            found.setdefault(name, manifest_harness(agent.manifest))
    return found


def harness_class(name: str, agents_dir: Path | None = None) -> type[Harness] | None:
    return harness_classes(agents_dir).get(name)


def default_providers(cls: type[Harness]) -> tuple[list[str], bool]:
    """The providers ``cls`` talks to with its default model, and whether the model picks."""
    manifest = getattr(cls, "manifest", None)
    if manifest is not None:
        return list(manifest.providers), False
    model = PRESET_DEFAULT_MODELS.get(cls.name) or cls.default_model
    context = AgentContext(instruction="", workdir="/app", agent={"model_id": model}, task=None)
    return cls().providers(context), "provider/" in (cls.model_format or "")


def describe_harnesses(tools: AgentTools) -> list[dict[str, Any]]:
    """Each harness, whether it runs here (tried in the sandbox) and which models it takes."""
    classes = harness_classes(tools.agents_dir)
    with ThreadPoolExecutor(_PROBES) as pool:
        statuses = list(pool.map(tools.availability_of, classes.values()))
    described = []
    for (name, cls), status in zip(classes.items(), statuses, strict=True):
        custom = cls.custom
        entry: dict[str, Any] = {
            "name": name,
            "available": status.available,
            "description": cls.description,
            "models": list(cls.models) if cls.models else None,
            "accepts_any_model": cls.accepts_any_model,
            "custom": custom,
        }
        if cls.model_format:
            entry["model_format"] = cls.model_format
        if cls.default_model:
            entry["default_model"] = cls.default_model
        if cls.binary:
            entry["providers"] = default_providers(cls)[0]
        if cls.binary:
            entry["version"] = status.version
            entry["source"] = status.source
        if status.reason:
            entry["reason"] = status.reason
        described.append(entry)
    for name, reason in sorted(custom_agents(tools.agents_dir, RESERVED_NAMES)[1].items()):
        described.append(
            {
                "name": name,
                "available": False,
                "description": "custom agent (its manifest is broken)",
                "models": None,
                "accepts_any_model": False,
                "custom": True,
                "reason": f"{reason}; fix it and add it again (envpools agents add --force)",
            }
        )
    return described
