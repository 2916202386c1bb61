"""``tasks check``: what each agent did to the task, against what a sound task gives."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import dump_json, write_out

if TYPE_CHECKING:
    from envpools_cli.task_folder import Verdict

__all__ = ["show_check"]


def show_check(folder: Path, verdicts: Sequence[Verdict], fmt: str) -> None:
    """One line per agent on stdout (or the verdicts as JSON); what went wrong on stderr."""
    from envpools_cli.output.messages import error, info, success

    if fmt in ("json", "yaml", "jsonl"):
        document = {
            "task": str(folder),
            "ok": all(v.ok for v in verdicts),
            "checks": [v.to_dict() for v in verdicts],
        }
        write_out(dump_json(document) + "\n")
    else:
        for verdict in verdicts:
            mark = "ok  " if verdict.ok else "FAIL"
            reward = "-" if verdict.reward is None else f"{verdict.reward:g}"
            write_out(
                f"{mark}  {verdict.agent:<6}  must {verdict.expected:<4}  {verdict.status:<9}  "
                f"reward {reward:<4}  {verdict.rollout_id or ''}\n"
            )
    for verdict in verdicts:
        if verdict.ok:
            continue
        error(f"{verdict.agent}: {clean(verdict.why)}")
        for line in verdict.verifier_output:
            info(f"  | {clean(line)}")
    if all(v.ok for v in verdicts):
        success(f"{folder.name}: the oracle passes and doing nothing fails")
