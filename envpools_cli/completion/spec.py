"""The command tree as plain data: commands, options, arguments and what values each takes.

Building it builds the whole Typer app (most of a second), so ``scripts/update-screens``
builds it once and writes it into ``tree.py``, which a Tab press reads (a test fails
when it is stale).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["Spec", "build", "load"]

TYPE_CHECKING = False  # typing costs a Tab press more than the rest of this module
if TYPE_CHECKING:
    from typing import Any

Spec = dict[str, "Any"]
"""``{"tree"}``; a tree node is ``{"help", "options", "args", "commands"}``."""

# What values a parameter takes, by its name; (command path, name) overrides. ``None``
# means a free value (a new id, a number): nothing to offer.
_KIND_BY_NAME: dict[str, str | None] = {
    "rollout_id": "rollout",
    "rollout_ids": "rollout",
    "pool_id": "pool",
    "pool": "pool",
    "task_id": "task",
    "task": "task_ref",
    "agent": "agent",
    "agents": "agent",
    "allowed_agent": "agent",
    "model": "model",
    "allowed_model": "model",
    "output": "format",
    "status": "status",
    "env_backend": "backend",
    "backend": "backend",
    "template": "template",
    "job_ref": "job",
    "job_a": "job",
    "job_b": "job",
    "color": "color",
    "pool_type": "pool_type",
    "types": "event_type",
    "fmt": "export_format",
}
_KIND_OVERRIDES: dict[tuple[str, str], str | None] = {
    ("", "profile"): "profile",
    ("pools create", "pool_id"): None,
    ("pools tasks create", "task_id"): None,
    ("tasks create", "task_id"): None,
    ("config get", "key"): "config_key",
    ("config set", "key"): "config_key",
    ("config unset", "key"): "config_key",
    ("config use", "name"): "profile",
    ("jobs run", "agent"): "agent_model",
    ("agents install", "agents"): "installable_agent",
    ("rollouts trajectory", "output"): "trajectory_format",
}
_FILE_NAMES = {"from_file", "junit", "zip_file", "out", "key_file", "value_file", "html"}
_DIR_NAMES = {"data_dir", "dir", "directory", "tasks"}
_EVENT_TYPES = ["lifecycle", "agent", "verifier", "reward", "heartbeat"]


def load() -> Spec:
    """The command tree, as ``scripts/update-screens`` generated it from ``build()``."""
    from envpools_cli.completion.tree import TREE

    return {"tree": TREE}


def static_choices() -> dict[str, list[str]]:
    """Value lists known without asking a backend."""
    from envpools_cli.config import PROFILE_KEYS
    from envpools_cli.models import TERMINAL_STATUSES
    from envpools_cli.output.formats import FORMATS
    from envpools_cli.server.agents.installs import AGENT_PACKAGES

    active = ["queued", "starting", "running", "verifying"]
    return {
        "format": list(FORMATS),
        "status": active + sorted(str(status) for status in TERMINAL_STATUSES),  # plain str
        "event_type": list(_EVENT_TYPES),
        "color": ["auto", "always", "never"],
        "config_key": sorted(PROFILE_KEYS),
        "installable_agent": sorted(AGENT_PACKAGES),
        "export_format": ["atif", "messages", "parquet"],
        "trajectory_format": ["table", "json", "messages"],
    }


def build() -> dict[str, Any]:
    """Walk the Typer app into plain data."""
    from envpools_cli.app import full_command

    return _node(full_command(), "", static_choices())


def _node(command: Any, path: str, choices: dict[str, list[str]]) -> dict[str, Any]:
    node: dict[str, Any] = {
        "help": _first_line(getattr(command, "short_help", None) or command.help or ""),
        "options": [],
        "args": [],
    }
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        kind = _kind(path, param)
        listed = _choices(param, kind, choices)
        if param.param_type_name == "argument":
            node["args"].append({"kind": kind, "many": param.nargs != 1, "choices": listed})
            continue
        node["options"].append(
            {
                "names": list(param.opts) + list(param.secondary_opts),
                "value": not param.is_flag,
                "multiple": bool(param.multiple),
                "kind": kind,
                "choices": listed,
                "help": _first_line(param.help or ""),
            }
        )
    subcommands = getattr(command, "commands", None)
    if subcommands:
        node["commands"] = {
            name: _node(sub, f"{path} {name}".strip(), choices)
            for name, sub in sorted(subcommands.items())
            if not getattr(sub, "hidden", False)
        }
    return node


def _kind(path: str, param: Any) -> str | None:
    name = str(param.name)
    if (path, name) in _KIND_OVERRIDES:
        return _KIND_OVERRIDES[path, name]
    if path == "" and name not in ("color",):
        return None
    if name in _KIND_BY_NAME:
        return _KIND_BY_NAME[name]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    metavar = str(getattr(param, "metavar", "") or "")
    if name in _DIR_NAMES or metavar == "DIR":
        return "dir"
    if name in _FILE_NAMES or annotation is Path or metavar in ("FILE", "PATH"):
        return "file"
    return None


def _choices(param: Any, kind: str | None, static: dict[str, list[str]]) -> list[str] | None:
    explicit = getattr(param.type, "choices", None) if hasattr(param, "type") else None
    if explicit:
        return [str(choice) for choice in explicit]
    if kind in static:
        return static[kind]
    if str(param.name) == "output" and kind is None:
        return _formats_in_help(param.help or "")
    return None


def _formats_in_help(text: str) -> list[str] | None:
    """``Output format: text, json or jsonl.`` -> the listed words (commands with their own set)."""
    _, sep, listed = text.partition(":")
    if not sep:
        return None
    words = listed.replace(" or ", ",").rstrip(".").split(",")
    found = [word.strip() for word in words if word.strip().isalnum()]
    return found or None


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()
