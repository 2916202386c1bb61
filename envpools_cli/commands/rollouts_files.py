"""envpools rollouts artifacts / download / trajectory / export: what a rollout left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envpools_cli.cli_errors import EXIT_NOT_FOUND, CLIError, UsageProblem
from envpools_cli.commands._export import (
    AgentFilterOpt,
    DirOpt,
    ExportFormatOpt,
    MinRewardOpt,
    OverwriteOpt,
    StatusFilterOpt,
    check_export_flags,
    run_export,
)
from envpools_cli.commands._ids import resolve_rollout_id, resolve_rollout_ids
from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    check_writable_file,
    output_format,
)
from envpools_cli.runtime import runtime

__all__ = ["artifacts", "download", "export", "trajectory"]


def artifacts(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only paths starting so.")] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """List a rollout's artifacts: path, size, who made it, checksum.

    Example: envpools rollouts artifacts ro_18ec37 --prefix agent/
    """
    from envpools_cli.downloads import manifest
    from envpools_cli.output.formats import emit, parse_fields
    from envpools_cli.output.rollouts import artifact_columns

    fmt = output_format(output, as_json, quiet, fields=fields)
    rollout_id = resolve_rollout_id(rollout_id)
    emit(
        manifest(rollout_id, prefix, runtime.conn()),
        fmt,
        columns=artifact_columns(),
        fields=parse_fields(fields),
        id_key="path",
        empty="No artifacts (yet).",
    )


def download(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    paths: Annotated[
        list[str] | None, typer.Argument(help="Artifact paths (default: all).", show_default=False)
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", "-d", help="Target directory (default: ./<rollout id>).")
    ] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only paths starting so.")] = None,
    as_zip: Annotated[bool, typer.Option("--zip", help="One zip file instead of files.")] = False,
    zip_file: Annotated[
        Path | None,
        typer.Option(
            "--zip-file",
            help="Where to write the zip (default: <rollout id>-artifacts.zip; - for stdout).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False,
) -> None:
    """Download artifacts (checked against their sha256), or all of them as a zip.

    Example: envpools rollouts download ro_18ec37 --dir ./out
    """
    from envpools_cli.downloads import download_files, download_zip
    from envpools_cli.output.streams import is_tty

    zipped = as_zip or zip_file is not None
    # Everything the flags alone can rule out is refused before the first request.
    if zipped and paths:
        raise UsageProblem("--zip takes every artifact (or --prefix), not PATH arguments")
    if zipped and directory is not None:
        raise UsageProblem("--dir is for files; with --zip, say where with --zip-file")
    if paths and prefix is not None:
        raise UsageProblem("choose PATH arguments or --prefix")
    if zip_file is not None and str(zip_file) == "-":
        if is_tty():
            raise UsageProblem("refusing to write a zip to a terminal")
        if overwrite:
            raise UsageProblem("--overwrite has nothing to replace on stdout (--zip-file -)")
    if directory is not None and directory.exists() and not directory.is_dir():
        raise UsageProblem(f"--dir {directory} is a file, not a directory")
    check_writable_file(zip_file, "--zip-file")
    if zip_file is not None and str(zip_file) != "-" and zip_file.exists() and not overwrite:
        raise UsageProblem(f"{zip_file} exists; use --overwrite")
    rollout_id = resolve_rollout_id(rollout_id)  # a read: nothing is written yet
    zip_target = zip_file or Path(f"{rollout_id}-artifacts.zip")
    if zipped and str(zip_target) != "-" and zip_target.exists() and not overwrite:
        raise UsageProblem(f"{zip_target} exists; use --overwrite")
    if zipped:
        download_zip(rollout_id, zip_target, prefix, runtime.conn())
        return
    download_files(
        rollout_id,
        directory or Path(rollout_id),
        runtime.conn(),
        paths=paths,
        prefix=prefix,
        overwrite=overwrite,
    )


def trajectory(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="table (readable steps), json (the ATIF document) or messages "
            "(OpenAI-style chat messages with tool calls).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    full: Annotated[
        bool, typer.Option("--full", help="Show every line of long messages and outputs.")
    ] = False,
) -> None:
    """What the agent did, step by step: messages, tool calls and their results, tokens.

    The rollout's trajectory.json (ATIF, the Agent Trajectory Interchange Format), as
    steps folded to fit, as the document itself (-o json), or as chat messages
    (-o messages) ready for a training set.

    Example: envpools rollouts trajectory ro_18ec37 -o messages | jq '.[-1].content'
    """
    from envpools_cli.runtime import runtime as _runtime

    default = "json" if runtime.resolved().output == "json" else "table"  # the profile's -o
    fmt = "json" if as_json else (output or default).lower()
    if as_json and output and output.lower() != "json":
        raise UsageProblem(f"--json and -o {output} disagree; choose one")
    if fmt not in ("table", "json", "messages"):
        raise UsageProblem(f"-o {output!r} is not one of table, json, messages")
    if fmt != "table":
        _runtime.json_errors = True
    from envpools_cli.atif import to_messages
    from envpools_cli.jobs.export import TrajectoryMissing, load_trajectory
    from envpools_cli.output.streams import dump_json, write_out
    from envpools_cli.output.trajectory import print_messages, print_trajectory

    rollout_id = resolve_rollout_id(rollout_id)
    try:
        document = load_trajectory(rollout_id, runtime.conn())
    except TrajectoryMissing:
        raise CLIError(
            f"rollout {rollout_id} has no trajectory",
            hint="it is written when the rollout ends; a backend other than envpools' own "
            "may write none (envpools rollouts artifacts shows what there is)",
            exit_code=EXIT_NOT_FOUND,
            code="not_found",
        ) from None
    except ValueError as exc:
        raise CLIError(f"rollout {rollout_id}'s trajectory.json is not valid ATIF: {exc}") from None
    if fmt == "json":
        write_out(dump_json(document.to_json_dict()) + "\n")
    elif fmt == "messages":
        print_messages(to_messages(document))
    else:
        print_trajectory(document.to_json_dict(), full=full)


def export(
    rollout_ids: Annotated[list[str], typer.Argument(help="Rollout ids.", show_default=False)],
    fmt: ExportFormatOpt = "messages",
    directory: DirOpt = Path("envpools-export"),
    min_reward: MinRewardOpt = None,
    status: StatusFilterOpt = None,
    agent: AgentFilterOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export rollouts' trajectories for training and analysis: ATIF, chat JSONL or Parquet.

    messages.jsonl holds one conversation per rollout ({"messages", "tools", "metadata"}:
    reward, task, agent, model, attempt), for datasets.load_dataset("json", ...);
    rollouts.parquet one row per rollout. The paths written go to stdout.

    Example: envpools rollouts export $(cat ids.txt) --format messages --min-reward 1 -d sft/
    """
    from envpools_cli import client as ep
    from envpools_cli.jobs.export import choose, items_of_rollouts

    statuses, agents = check_export_flags(fmt, status, agent)
    ids = resolve_rollout_ids(rollout_ids)
    conn = runtime.conn()
    docs = [ep.get_rollout(rid, **conn) for rid in ids]
    items = choose(items_of_rollouts(docs), min_reward=min_reward, statuses=statuses, agents=agents)
    run_export(
        items,
        fmt=fmt,
        folder=directory,
        overwrite=overwrite,
        conn=conn,
        as_json=as_json,
        describe=lambda n: f"{n} of {len(ids)} rollout(s)",
    )
