"""How ``capabilities get`` reads on a terminal: the backend, its agents, what it can run."""

from __future__ import annotations

from typing import Any

from envpools_cli.output.describe import Section

__all__ = ["capability_sections"]


def _agent_line(agent: dict[str, Any]) -> str:
    if agent.get("available") is False:
        return f"unavailable: {agent.get('reason') or 'no reason given'}"
    parts = ["available (custom agent)" if agent.get("custom") else "available"]
    if agent.get("version"):
        parts.append(f"version {agent['version']}")
    models = agent.get("models")
    if isinstance(models, list) and models:
        more = ", or any model id" if agent.get("accepts_any_model") else ""
        parts.append(f"models {', '.join(str(m) for m in models)}{more}")
    elif agent.get("description"):
        parts.append(str(agent["description"]))
    return " · ".join(parts)


def capability_sections(caps: dict[str, Any]) -> list[Section]:
    """Backend, agents, task backends, pool types and templates, features, datasets."""
    summary = Section(None)
    summary.add("Backend", caps.get("backend"))
    summary.add("Version", caps.get("version"))
    sandbox = caps.get("sandbox")
    if isinstance(sandbox, dict):
        isolated = "isolated" if sandbox.get("isolated") else "NOT isolated"
        summary.add("Sandbox", f"{sandbox.get('driver', '?')}, {isolated}")
        summary.add("Sandbox warning", sandbox.get("warning"))
        memory = sandbox.get("memory_limit")
        if isinstance(memory, dict):
            summary.add("Memory limit", memory.get("how"))
    if isinstance(caps.get("heartbeat_sec"), int | float):
        summary.add("Heartbeat", f"every {caps['heartbeat_sec']:g}s")
    cli = caps.get("cli")
    if isinstance(cli, dict):
        summary.add("CLI", cli.get("version"))
    shown = {"backend", "version", "sandbox", "heartbeat_sec", "cli", "models"}

    agents = Section("Agents")
    for agent in caps.get("agents") or []:
        if isinstance(agent, dict):
            agents.add(str(agent.get("name")), _agent_line(agent))
        else:
            agents.add(str(agent), "available")
    shown.add("agents")

    backends = Section("Task backends")
    for name, info in sorted((caps.get("backends") or {}).items()):
        if isinstance(info, dict):
            supported = info.get("supported")
            backends.add(
                name, "runs here" if supported else f"no: {info.get('reason') or 'not supported'}"
            )
        else:
            backends.add(name, info)
    shown.add("backends")

    offers = Section("Offers")
    offers.add("Pool types", caps.get("pool_types"))
    offers.add("Templates", caps.get("templates"))
    features = caps.get("features")
    if isinstance(features, dict):
        offers.add("Features", [k.replace("_", "-") for k, v in features.items() if v])
        offers.add("Not offered", [k.replace("_", "-") for k, v in features.items() if not v])
    shown |= {"pool_types", "templates", "features"}

    scheduling = Section("Scheduling")
    plan = caps.get("scheduling")
    if isinstance(plan, dict):
        capacity = plan.get("capacity") or {}
        scheduling.add("Executor", plan.get("executor"))
        scheduling.add(
            "At once",
            f"{plan.get('runs_at_once')} default-sized rollouts (limited by "
            f"{plan.get('limited_by')}); more: {plan.get('how_to_raise')}",
        )
        if "cores" in capacity:
            scheduling.add(
                "Capacity",
                f"{capacity.get('cpus'):g} cpus ({capacity.get('cores')} cores x overcommit "
                f"{capacity.get('cpu_overcommit'):g}), {capacity.get('memory_mb')} MB memory, "
                f"open files {capacity.get('open_files_limit')}",
            )
        scheduling.add("Max running", plan.get("max_running") or "no cap")
        for node in plan.get("nodes") or []:
            if isinstance(node, dict):
                scheduling.add(f"Node {node.get('name')}", _node_line(node))
    shown.add("scheduling")

    datasets = Section("Datasets")
    for name, tasks in sorted((caps.get("datasets") or {}).items()):
        datasets.add(name, tasks)
    shown.add("datasets")

    other = Section("Other")
    for key, value in caps.items():
        if key not in shown:
            other.add(key, value)
    return [summary, agents, backends, offers, scheduling, datasets, other]


def _node_line(node: dict[str, Any]) -> str:
    parts = ["alive" if node.get("alive", True) else "DEAD"]
    if node.get("address"):
        parts.append(str(node["address"]))
    resources = node.get("resources")
    if isinstance(resources, dict) and resources:
        parts.append(", ".join(f"{k} {v:g}" for k, v in sorted(resources.items())))
    parts.append(f"{node.get('running', 0)} running")
    return " · ".join(parts)
