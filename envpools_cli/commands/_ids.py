"""Unique id prefixes, as docker and git accept them: ``ro_18ec40d5`` names one rollout."""

from __future__ import annotations

import re
from typing import Any

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.runtime import runtime
from envpools_cli.shared import follow_rollout_pages

__all__ = ["resolve_rollout_id", "resolve_rollout_ids"]

#: A whole id as the local backend mints it (``ro_`` + 22 hex digits): used as given.
_FULL_LOCAL_ID = re.compile(r"ro_[0-9a-f]{22}")
#: How far back a prefix is looked for: the newest rollouts, a page of 500 at a time.
SCAN_LIMIT = 5000
_SHOWN = 10


def resolve_rollout_id(given: str) -> str:
    """The whole id a unique prefix names, or ``given`` unchanged (the backend then decides).

    An ambiguous prefix is a usage error (exit 2) that lists the matching rollouts.
    """
    return resolve_rollout_ids([given])[0]


def resolve_rollout_ids(given: list[str]) -> list[str]:
    """Every argument resolved, from one listing of recent rollouts (fetched only if needed)."""
    if all(_FULL_LOCAL_ID.fullmatch(arg) for arg in given):
        return list(given)
    recent = _recent_rollouts()
    return [arg if _FULL_LOCAL_ID.fullmatch(arg) else _match(arg, recent) for arg in given]


def _match(given: str, recent: list[dict[str, Any]]) -> str:
    ids = [str(doc.get("rollout_id")) for doc in recent if doc.get("rollout_id")]
    if given in ids:
        return given
    # "18ec40d5" as well as "ro_18ec40d5", the way people copy the hex part.
    wanted = (given,) if given.startswith("ro_") else (given, f"ro_{given}")
    matches = [rid for rid in ids if rid.startswith(wanted)] if given else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        by_id = {str(doc.get("rollout_id")): doc for doc in recent}
        lines = [
            f"  {rid}  {by_id[rid].get('status', '?')}  {_task(by_id[rid])}"
            for rid in matches[:_SHOWN]
        ]
        more = f"\n  … and {len(matches) - _SHOWN} more" if len(matches) > _SHOWN else ""
        raise UsageProblem(
            f"{given!r} matches {len(matches)} rollouts; give more of the id:\n"
            + "\n".join(lines)
            + more
        )
    return given


def _task(doc: dict[str, Any]) -> str:
    ref = doc.get("task_ref")
    return f"{ref.get('dataset')}/{ref.get('task_id')}" if isinstance(ref, dict) else "-"


def _recent_rollouts() -> list[dict[str, Any]]:
    from envpools_cli import client as ep

    conn = runtime.conn()
    found = follow_rollout_pages(
        lambda cursor, size: ep.list_rollouts(cursor=cursor, limit=size, **conn), SCAN_LIMIT
    )
    return found or []
