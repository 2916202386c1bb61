"""envpools local images: the task images the container sandbox driver built on this machine."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import CLIError
from envpools_cli.commands._options import FieldsOpt, JsonOpt, OutputOpt, QuietOpt, output_format

app = typer.Typer(
    help="Task images built from environment/Dockerfile (container sandbox driver).",
    no_args_is_help=True,
)


TaskOpt = Annotated[
    str | None, typer.Option("--task", help="Only the images of this task (its folder name).")
]


def _images() -> Any:
    from envpools_cli.server.sandbox.engine import probe_runtime
    from envpools_cli.server.sandbox.images import Images

    probe = probe_runtime()
    if probe.runtime is None:
        raise CLIError(
            f"no container engine works here: {probe.reason}",
            hint="install podman (apt-get install podman) or Docker; see README, "
            "'Choosing a sandbox driver'",
        )
    return Images(probe.runtime)


def _size(row: dict[str, Any]) -> str:
    if isinstance(row.get("size_bytes"), int):
        return f"{row['size_bytes'] / 1e6:.0f} MB"
    return str(row.get("size") or "-")


@app.command("list")
def list_(
    task: TaskOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Task images in the engine's store, one per task and environment hash.

    A rollout of an unchanged task reuses its image; a changed environment/ folder makes
    a new one, and the old one stays until pruned.

    Example: envpools local images list -o json | jq -r '.[].image'
    """
    from envpools_cli.output.formats import Column, emit, parse_fields

    fmt = output_format(output, as_json, quiet)
    try:
        rows = [{**row, "size": _size(row)} for row in _images().matching(task)]
    except RuntimeError as exc:
        raise CLIError(f"could not list the images: {exc}") from None
    emit(
        rows,
        fmt,
        columns=[
            Column("IMAGE", "image", kind="id"),
            Column("ID", "id", kind="fixed"),
            Column("TASK", "task", render=lambda v: v or "-"),
            Column("SIZE", "size", kind="fixed"),
            Column("CREATED", "created", kind="age"),
        ],
        fields=parse_fields(fields),
        id_key="image",
        empty="no task images yet: the container driver builds one on a task's first rollout",
    )


@app.command("prune")
def prune(
    task: TaskOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the task images (the next rollout of each task builds its image again).

    Images a running rollout uses stay, with the reason. Base images (the one
    scripts/base-image makes, or images you pulled) are never touched.

    Example: envpools local images prune --task fix-failing-test --dry-run
    """
    from envpools_cli.output.formats import emit_record
    from envpools_cli.output.messages import info, success, warn

    fmt = output_format(output, as_json, False)
    images = _images()
    try:
        if dry_run:
            removed, kept = [row["image"] for row in images.matching(task)], []
        else:
            removed, kept = images.prune(task_name=task)
    except RuntimeError as exc:
        raise CLIError(f"could not list the images: {exc}") from None
    if fmt != "table":
        emit_record({"removed": removed, "kept": kept, "dry_run": dry_run}, fmt)
        return
    verb = "would remove" if dry_run else "removed"
    for image in removed:
        info(f"{verb} {image}")
    for reason in kept:
        warn(f"kept {reason}")
    success(f"{verb} {len(removed)} image{'s' if len(removed) != 1 else ''}")
