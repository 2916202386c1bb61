"""Every agent of an agents dir as ``envpools agents list`` shows it.

Built-in or custom, the installed version, the providers it talks to, its models, and
whether it runs here, decided as the backend decides it: by starting its CLI in a sandbox
(``AgentTools.availability_of``), as the sandbox's own user. Without a running backend
the check uses bubblewrap (else plain processes): the container driver's check would
need a task's image.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from envpools_cli.models import PRESET_DEFAULT_MODELS
from envpools_cli.server.agents import RESERVED_NAMES, default_providers, harness_classes
from envpools_cli.server.agents.custom import custom_agents
from envpools_cli.server.agents.installs import (
    AGENT_PACKAGES,
    AgentTools,
    Availability,
    installed_agents,
)
from envpools_cli.server.sandbox.drivers import (
    DEFAULT_SANDBOX_UID,
    SandboxUser,
    SandboxUsers,
    backend_user,
    make_driver,
)

__all__ = ["agent_rows", "local_tools"]

_PROBES = 8


def local_tools(agents_dir: Path) -> AgentTools:
    """Agent tools that check in this machine's sandbox, as a backend here would."""
    choice = os.environ.get("ENVPOOLS_SANDBOX") or "auto"
    driver, _ = make_driver("process" if choice == "process" else "auto")
    users = SandboxUsers(int(os.environ.get("ENVPOOLS_SANDBOX_UID") or DEFAULT_SANDBOX_UID))

    def take() -> SandboxUser:
        return users.take() if driver.switches_user else backend_user()

    def release(user: SandboxUser) -> None:
        if driver.switches_user:
            users.release(user)

    tools_path = [Path(p) for p in os.environ.get("ENVPOOLS_TOOL_PATH", "").split(os.pathsep) if p]
    checks = agents_dir / ".checks.json" if agents_dir.is_dir() else None
    return AgentTools(agents_dir, tools_path, driver, users=(take, release), checks_file=checks)


def agent_rows(agents_dir: Path, tools: AgentTools | None) -> list[dict[str, Any]]:
    """One row per agent, built-ins first; ``tools`` None: installs only, no sandbox check."""
    classes = harness_classes(agents_dir)
    installs = installed_agents(agents_dir)
    custom, broken = custom_agents(agents_dir, RESERVED_NAMES)
    statuses: list[Availability | None] = [None] * len(classes)
    if tools is not None:
        with ThreadPoolExecutor(_PROBES) as pool:
            statuses = list(pool.map(tools.availability_of, classes.values()))
    rows = []
    for (name, cls), status in zip(classes.items(), statuses, strict=True):
        providers, by_model = default_providers(cls)
        row: dict[str, Any] = {
            "agent": name,
            "kind": "custom" if name in custom else "built-in",
            "installed": None,
            "default_version": None,
            "package": None,
            "providers": providers,
            "provider_from_model": by_model,
            "models": list(cls.models or ()),
            "default_model": PRESET_DEFAULT_MODELS.get(name) or cls.default_model,
            "accepts_any_model": cls.accepts_any_model,
            "available": None if status is None else status.available,
            "reason": None if status is None else status.reason,
            "path": None,
            "description": cls.description,
        }
        if name in AGENT_PACKAGES:
            package, install = AGENT_PACKAGES[name], installs.get(name)
            row.update(
                package=package.package,
                default_version=package.version,
                installed=install.version if install else None,
                path=str(install.root) if install else None,
                installed_at=install.installed_at if install else None,
            )
        elif name in custom:
            agent = custom[name]
            row.update(
                installed=agent.manifest.version or "added",
                package=agent.package,
                path=str(agent.root),
                source=agent.source,
                installed_at=agent.added_at,
            )
        elif cls.binary is None:
            row["installed"] = "built in"
        if status is not None and status.available and status.version and row["installed"]:
            row["runs_version"] = status.version
        rows.append(row)
    for name, reason in sorted(broken.items()):
        rows.append(
            {
                "agent": name,
                "kind": "custom",
                "installed": None,
                "providers": [],
                "models": [],
                "available": False,
                "reason": f"{reason}; fix it and add it again (envpools agents add --force)",
                "path": str(agents_dir / "custom" / name),
            }
        )
    return rows
