"""envpools rollouts artifacts / download: what a rollout left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._ids import resolve_rollout_id
from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    check_writable_file,
    output_format,
)
from envpools_cli.runtime import runtime

__all__ = ["artifacts", "download"]


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
