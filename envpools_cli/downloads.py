"""A rollout's artifacts onto disk: the manifest page by page, every path kept inside the
target, each file written whole (``.part`` then rename) and checked against its sha256.
Shared by ``rollouts artifacts``, ``rollouts download`` and ``demo``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from envpools_cli.cli_errors import EXIT_NOT_FOUND, CLIError, UsageProblem

__all__ = ["download_files", "download_zip", "manifest", "safe_target"]

_CHUNK = 64 * 1024


def manifest(rollout_id: str, prefix: str | None, conn: dict[str, Any]) -> list[dict[str, Any]]:
    """Every artifact of the rollout (under ``prefix``), across pages."""
    from envpools_cli import client as ep

    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = ep.list_rollout_artifacts(rollout_id, prefix=prefix, cursor=cursor, **conn)
        entries += page.get("artifacts") or []
        cursor = page.get("next_cursor")
        if not cursor or not page.get("artifacts"):
            return entries


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


def _write_atomic(target: Path, chunks: Iterable[bytes], on_bytes: Callable[[int], Any]) -> str:
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


def download_zip(rollout_id: str, target: Path, prefix: str | None, conn: dict[str, Any]) -> None:
    """Every artifact (under ``prefix``) as one zip at ``target``; ``-`` is stdout."""
    from envpools_cli import client as ep
    from envpools_cli.output.messages import success
    from envpools_cli.output.progress import download_progress
    from envpools_cli.output.streams import write_bytes_out

    with ep.open_artifacts_zip(rollout_id, prefix=prefix, **conn) as response:
        if str(target) == "-":
            write_bytes_out(response.iter_bytes(_CHUNK))
            return
        with download_progress() as progress:
            task = progress.add_task(f"{rollout_id}.zip", total=None)
            _write_atomic(target, response.iter_bytes(_CHUNK), lambda n: progress.advance(task, n))
    success(f"wrote {target} ({target.stat().st_size} bytes)")


def download_files(
    rollout_id: str,
    root: Path,
    conn: dict[str, Any],
    *,
    paths: list[str] | None = None,
    prefix: str | None = None,
    overwrite: bool = False,
) -> None:
    """The artifacts named by ``paths`` (default: all, or those under ``prefix``) under ``root``.

    Nothing is written when a path is missing or a file would be replaced without
    ``overwrite``; a file whose checksum does not match is removed.
    """
    from envpools_cli import client as ep
    from envpools_cli.output.messages import success
    from envpools_cli.output.progress import download_progress

    entries = manifest(rollout_id, prefix, conn)
    if paths:
        wanted = {p.lstrip("/") for p in paths}
        missing = wanted - {e["path"] for e in entries}
        if missing:
            raise CLIError(
                f"no such artifact(s): {', '.join(sorted(missing))}",
                exit_code=EXIT_NOT_FOUND,
                code="not_found",
            )
        entries = [e for e in entries if e["path"] in wanted]
    if not entries:
        raise CLIError(
            f"rollout {rollout_id} has no artifacts to download",
            exit_code=EXIT_NOT_FOUND,
            code="not_found",
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
