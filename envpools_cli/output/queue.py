"""How ``queue status`` reads on a terminal beside its table: capacity and nodes."""

from __future__ import annotations

from typing import Any

__all__ = ["scheduling_lines"]


def scheduling_lines(scheduling: dict[str, Any]) -> list[str]:
    """What the executor can run at once, what is reserved, and each node's share."""
    capacity = scheduling.get("capacity") or {}
    reserved = scheduling.get("reserved") or {}
    lines = [
        f"executor {scheduling.get('name')}: {capacity.get('runs_at_once')} default-sized "
        f"rollouts at once (limited by {capacity.get('limited_by')}); reserved now: "
        f"{reserved.get('running', 0)} running, {reserved.get('cpus', 0):g} cpus, "
        f"{reserved.get('memory_mb', 0)} MB"
    ]
    for node in scheduling.get("nodes") or []:
        if not isinstance(node, dict):
            continue
        state = "alive" if node.get("alive", True) else "dead"
        where = f" {node['address']}" if node.get("address") else ""
        lines.append(
            f"node {node.get('name')}{where} ({state}): {node.get('running', 0)} running"
            + (f", capacity {node['resources']}" if node.get("resources") else "")
        )
    return lines
