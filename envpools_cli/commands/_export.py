"""What ``jobs export`` and ``rollouts export`` share: their options, checks and the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._options import check_choice
from envpools_cli.runtime import runtime

if TYPE_CHECKING:
    from envpools_cli.jobs.export import ExportItem

__all__ = [
    "AgentFilterOpt",
    "DirOpt",
    "ExportFormatOpt",
    "MinRewardOpt",
    "OverwriteOpt",
    "StatusFilterOpt",
    "check_export_flags",
    "run_export",
]

FORMATS = ("atif", "messages", "parquet")

ExportFormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="FORMAT",
        help="atif (a trajectory.json per rollout), messages (chat JSONL, one conversation "
        "per rollout) or parquet (one row per rollout; needs pyarrow).",
    ),
]
DirOpt = Annotated[
    Path, typer.Option("--dir", "-d", help="The folder to write into (created if missing).")
]
MinRewardOpt = Annotated[
    float | None,
    typer.Option(
        "--min-reward",
        metavar="R",
        help="Only rollouts with a reward of at least R.",
        show_default=False,
    ),
]
StatusFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        metavar="STATUS",
        help="Only rollouts that ended so (repeat or comma-separate: succeeded,failed).",
        show_default=False,
    ),
]
AgentFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--agent",
        "-a",
        metavar="AGENT",
        help="Only rollouts of this agent (repeat or comma-separate).",
        show_default=False,
    ),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace files an earlier export left.")
]


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def check_export_flags(
    fmt: str, statuses: list[str] | None, agents: list[str] | None
) -> tuple[list[str], list[str]]:
    """The status and agent filters, checked before any request."""
    from envpools_cli.models import HARNESS_ALIASES, TERMINAL_STATUSES

    check_choice(fmt, "--format", FORMATS)
    wanted = [s.lower() for s in _split(statuses)]
    for status in wanted:
        check_choice(status, "--status", sorted(TERMINAL_STATUSES))
    names = [HARNESS_ALIASES.get(a, a) for a in _split(agents)]
    if fmt == "parquet":
        from envpools_cli.jobs.export import parquet_available

        if not parquet_available():
            raise UsageProblem(
                "--format parquet needs pyarrow",
                hint="pip install 'envpools[parquet]' (or pip install pyarrow)",
            )
    return wanted, names


def _refuse_existing(paths: list[Path], overwrite: bool, folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageProblem(f"--dir {folder} is a file, not a folder")
    taken = [p for p in paths if p.exists()]
    if taken and not overwrite:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise UsageProblem(f"{taken[0]}{more} exists; use --overwrite")


def run_export(
    items: list[ExportItem],
    *,
    fmt: str,
    folder: Path,
    overwrite: bool,
    conn: dict[str, Any],
    as_json: bool,
    describe: Callable[[int], str],
) -> None:
    """Export ``items`` (already filtered), with a progress bar on a terminal."""
    from envpools_cli.jobs.export import ExportError, export, targets
    from envpools_cli.output.messages import info, success, warn
    from envpools_cli.output.progress import count_progress
    from envpools_cli.output.streams import dump_json, write_out

    _refuse_existing(targets(folder, fmt, items), overwrite, folder)
    if not items:
        warn("no rollout matches the filters: nothing to export")
    else:
        info(f"exporting {describe(len(items))} as {fmt} to {folder}")
    with count_progress("trajectories", len(items)) as advance:
        try:
            result = export(items, folder, fmt, conn, advance=advance)
        except ExportError as exc:
            raise UsageProblem(str(exc)) from None
    for skipped in result.skipped[:5]:
        warn(f"skipped {skipped['rollout_id']}: {skipped['reason']}")
    if len(result.skipped) > 5:
        warn(f"... and {len(result.skipped) - 5} more skipped")
    if as_json:
        runtime.json_errors = True
        write_out(dump_json(result.to_dict()) + "\n")
    else:
        write_out("".join(f"{path}\n" for path in result.files))
    success(
        f"exported {len(result.written)} rollout(s) to {folder}"
        + (f"; {len(result.skipped)} without a trajectory" if result.skipped else "")
    )
