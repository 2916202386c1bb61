"""A Harbor task directory named with ``--local``, checked and made into a pool task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envpools_cli.cli_errors import UsageProblem

__all__ = ["local_task_body"]


def local_task_body(path: Path, task_id: str | None = None) -> dict[str, Any]:
    """The pool task for the Harbor task at ``path`` (named after its folder by default)."""
    from envpools_cli.client import PoolTask

    resolved = path.expanduser().resolve()
    if not resolved.is_dir():
        raise UsageProblem(f"{path}: not a directory")
    if (
        not (resolved / "instruction.md").is_file()
        or not (resolved / "tests" / "test.sh").is_file()
    ):
        raise UsageProblem(f"{path}: not a Harbor task (needs instruction.md and tests/test.sh)")
    return PoolTask.from_local(task_id or resolved.name, str(resolved)).model_dump()
