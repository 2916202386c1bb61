"""How the local backend reads on a terminal: ``local up`` and ``local status``."""

from __future__ import annotations

from typing import Any

from envpools_cli.output.formats import emit_record
from envpools_cli.output.messages import info, success, warn

__all__ = ["describe_builds", "describe_sandbox", "describe_scheduling", "show_started"]


def describe_sandbox(health: dict[str, Any]) -> str:
    """``container (podman 4.3.1, runc)``, ``bwrap``: the driver and, for containers, its engine."""
    name = str(health.get("sandbox") or "?")
    details = (health.get("sandbox_detail") or {}).get("details") or {}
    if not details.get("engine"):
        return name
    engine = " ".join(str(details[k]) for k in ("engine", "version") if details.get(k))
    return f"{name} ({', '.join(filter(None, [engine, details.get('oci_runtime')]))})"


def describe_builds(health: dict[str, Any]) -> str | None:
    """How images are built (container driver): isolation, RUN mounts, engine advisories."""
    details = (health.get("sandbox_detail") or {}).get("details") or {}
    builds = details.get("builds")
    if not isinstance(builds, dict):
        return None
    isolation = str(builds.get("isolation") or "?")
    parts = [
        "isolated (user namespace, own store)"
        if not isolation.startswith("none")
        else f"not isolated ({isolation.removeprefix('none: ')})",
        f"RUN --mount: {builds.get('run_mounts', '?')}",
    ]
    advisories = [str(a).split(":", 1)[0] for a in builds.get("engine_advisories") or []]
    if advisories:
        parts.append(f"engine has known builder escapes: {', '.join(advisories)}")
    return "; ".join(parts)


def describe_scheduling(scheduling: dict[str, Any]) -> str:
    """``16 at once (cpus: 2 cores x overcommit 8), max running: none``: for people."""
    if not scheduling:
        return "?"
    capacity = scheduling.get("capacity") or {}
    limit = scheduling.get("limited_by")
    overcommit = scheduling.get("cpu_overcommit")
    shown = f"{overcommit:g}" if isinstance(overcommit, int | float) else "?"
    why = {
        "cpus": f"cpus: {capacity.get('cores')} cores x overcommit {shown}",
        "memory": f"memory: {capacity.get('memory_mb')} MB for rollouts",
        "open_files": f"open files: limit {capacity.get('open_files_limit')}",
        "max_running": "--max-running",
        "sandbox_slots": "the cluster's sandbox slots",
    }.get(str(limit), str(limit))
    text = f"{scheduling.get('runs_at_once')} rollouts at once ({why})"
    if scheduling.get("executor") not in (None, "local"):
        text += f", executor {scheduling['executor']}"
    cap = scheduling.get("max_running")
    return text + f", max running: {cap if cap is not None else 'no cap'}"


def show_started(record: dict[str, Any], health: dict[str, Any], fmt: str) -> None:
    """The result of ``local up``: the record in machine formats, a few lines for people."""
    if fmt != "table":
        emit_record(record, fmt)
        return
    verb = "started" if record["started"] else "already running"
    success(
        f"local backend {verb} at {record['url']} (pid {record['pid']}, "
        f"sandbox: {describe_sandbox(health)})"
    )
    if note := (health.get("sandbox_detail") or {}).get("container_unavailable"):
        info(f"not the container driver: {note}")
    if health.get("sandbox", "?") == "process":
        warn(
            "bubblewrap is not available: rollouts run as plain processes, without "
            "isolation (apt-get install bubblewrap)"
        )
    if scheduling := health.get("scheduling"):
        info(f"runs {describe_scheduling(scheduling)}")
    if remembered := record.get("remembered"):
        shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in remembered.items())
        info(f"remembered settings: {shown} (a flag changes one; local up --reset forgets them)")
    profile = record["profile"]
    info(f"profile {profile!r}: key in {record['key_stored_in']}; data in {record['data_dir']}")
    if not record["current_profile"]:
        info(f"use it with --profile {profile}, or 'envpools config use {profile}'")
