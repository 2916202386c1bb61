"""envpools rollouts artifacts / download: what a rollout left behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import CLIError, UsageProblem
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

__all__ = ["artifacts", "download", "safe_target"]

_CHUNK = 64 * 1024


def _manifest(rollout_id: str, prefix: str | None) -> list[dict[str, Any]]:
    from envpools_cli import client as ep

    conn = runtime.conn()
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = ep.list_rollout_artifacts(rollout_id, prefix=prefix, cursor=cursor, **conn)
        entries += page.get("artifacts") or []
        cursor = page.get("next_cursor")
        if not cursor or not page.get("artifacts"):
            return entries


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
    from envpools_cli.output.formats import emit, parse_fields
    from envpools_cli.output.rollouts import artifact_columns

    fmt = output_format(output, as_json, quiet, fields=fields)
    emit(
        _manifest(resolve_rollout_id(rollout_id), prefix),
        fmt,
        columns=artifact_columns(),
        fields=parse_fields(fields),
        id_key="path",
        empty="No artifacts (yet).",
    )


def safe_target(root: Path, relative: str) -> Path:
    """Where an artifact goes under ``root``; the server's path is not trusted."""
    pure = PurePosixPath(relative)
    bad_part = any(part in ("..", "") for part in pure.parts)
    if not pure.parts or pure.is_absolute() or bad_part or "\\" in relative:
        raise CLIError(
            f"refusing artifact path {relative!r}: it would leave {root}", code="unsafe_path"
        )
    target = root.joinpath(*pure.parts)
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise CLIError(
            f"refusing artifact path {relative!r}: it would leave {root}", code="unsafe_path"
        )
    return target


def _write_atomic(target: Path, chunks: Any, on_bytes: Any) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with partial.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            digest.update(chunk)
            on_bytes(len(chunk))
    os.replace(partial, target)
    return digest.hexdigest()


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
    from envpools_cli import client as ep
    from envpools_cli.output.messages import success
    from envpools_cli.output.progress import download_progress
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
    conn = runtime.conn()
    if zipped:
        target = zip_target
        with ep.open_artifacts_zip(rollout_id, prefix=prefix, **conn) as response:
            if str(target) == "-":
                import sys

                for chunk in response.iter_bytes(_CHUNK):
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                return
            with download_progress() as progress:
                task = progress.add_task(f"{rollout_id}.zip", total=None)
                _write_atomic(
                    target, response.iter_bytes(_CHUNK), lambda n: progress.advance(task, n)
                )
        success(f"wrote {target} ({target.stat().st_size} bytes)")
        return

    root = directory or Path(rollout_id)
    entries = _manifest(rollout_id, prefix)
    if paths:
        wanted = {p.lstrip("/") for p in paths}
        missing = wanted - {e["path"] for e in entries}
        if missing:
            raise CLIError(
                f"no such artifact(s): {', '.join(sorted(missing))}", exit_code=6, code="not_found"
            )
        entries = [e for e in entries if e["path"] in wanted]
    if not entries:
        raise CLIError(
            f"rollout {rollout_id} has no artifacts to download", exit_code=6, code="not_found"
        )
    plan = [(entry, safe_target(root, entry["path"])) for entry in entries]
    clashes = [str(t) for _, t in plan if t.exists() and not overwrite]
    if clashes:
        raise UsageProblem(
            f"{clashes[0]} exists (and {len(clashes) - 1} more); use --overwrite or another --dir"
        )
    total = sum(int(e.get("size_bytes") or 0) for e in entries)
    with download_progress() as progress:
        task = progress.add_task(f"{len(entries)} files", total=total or None)
        for entry, target in plan:
            with ep.open_artifact(rollout_id, entry["path"], **conn) as response:
                digest = _write_atomic(
                    target, response.iter_bytes(_CHUNK), lambda n: progress.advance(task, n)
                )
            expected = entry.get("sha256")
            if expected and digest != expected:
                target.unlink(missing_ok=True)
                raise CLIError(
                    f"{entry['path']}: checksum mismatch (got {digest[:12]}, "
                    f"expected {expected[:12]}); the file was removed",
                    code="checksum_mismatch",
                )
    success(f"downloaded {len(entries)} file(s) to {root}/")
