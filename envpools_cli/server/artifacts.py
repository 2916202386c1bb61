"""A rollout's artifacts: what its trial folder holds after the run.

The trial folder mirrors Harbor's layout: ``agent/``, ``verifier/`` and ``artifacts/``
(bound at ``/logs/...`` in the sandbox), plus ``workspace.diff``, ``workspace.tar.gz``
and ``result.json`` written by the worker. Paths are relative to the trial folder;
nothing outside those entries is ever served, and symlinks are never followed.
"""

from __future__ import annotations

import difflib
import hashlib
import mimetypes
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

__all__ = [
    "ArtifactPathError",
    "index_trial",
    "resolve_artifact",
    "workspace_diff",
    "workspace_tarball",
    "zip_stream",
]

LOG_DIRS = ("agent", "verifier", "artifacts")
WORKER_FILES = ("workspace.diff", "workspace.tar.gz", "result.json")
_TEXT_SUFFIXES = {".txt", ".log", ".diff", ".patch", ".md", ".jsonl", ".sh", ".py", ".toml"}
_CHUNK = 64 * 1024


class ArtifactPathError(ValueError):
    """The requested path is not a place an artifact can be."""


def _provenance(relative: str) -> str:
    top = relative.split("/", 1)[0]
    return top if top in ("agent", "verifier") else "worker"


def content_type(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return "text/plain; charset=utf-8"
    if suffix == ".json":
        return "application/json"
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _regular_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not Path(folder, d).is_symlink())
        for name in sorted(files):
            path = Path(folder, name)
            if stat.S_ISREG(path.lstat().st_mode):
                yield path


def index_trial(trial: Path) -> list[dict[str, Any]]:
    """Manifest entries for every regular file an artifact may be."""
    candidates: list[Path] = []
    for name in LOG_DIRS:
        folder = trial / name
        if folder.is_dir() and not folder.is_symlink():
            candidates += list(_regular_files(folder))
    candidates += [
        trial / name
        for name in WORKER_FILES
        if (trial / name).is_file() and not (trial / name).is_symlink()
    ]
    entries = []
    for path in candidates:
        relative = path.relative_to(trial).as_posix()
        info = path.lstat()
        entries.append(
            {
                "path": relative,
                "size_bytes": info.st_size,
                "sha256": _sha256(path),
                "content_type": content_type(relative),
                "provenance": _provenance(relative),
                "created_at": datetime.fromtimestamp(info.st_mtime, UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
        )
    return entries


def resolve_artifact(trial: Path, requested: str) -> tuple[str, Path]:
    """The normalised artifact path and its file; raises ArtifactPathError if unsafe."""
    if "\0" in requested or "\\" in requested:
        raise ArtifactPathError("artifact paths may not contain NUL or backslashes")
    parts = [p for p in requested.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ArtifactPathError(f"artifact path {requested!r} leaves the rollout's folder")
    relative = "/".join(parts)
    if parts[0] not in LOG_DIRS and relative not in WORKER_FILES:
        raise ArtifactPathError(f"{relative!r} is not an artifact of this rollout")
    candidate = trial.joinpath(*parts)
    current = trial
    for part in parts:  # refuse symlinks anywhere on the way
        current = current / part
        if current.is_symlink():
            raise ArtifactPathError(f"artifact path {relative!r} goes through a symlink")
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(Path(os.path.realpath(trial))):
        raise ArtifactPathError(f"artifact path {requested!r} leaves the rollout's folder")
    return relative, candidate


class _Sink:
    """A write-only, non-seekable file for zipfile that hands out what was written."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(trial: Path, paths: Iterable[str]) -> Iterator[bytes]:
    """Zip bytes produced file by file, never holding more than a chunk of any file."""
    sink = _Sink()
    target = cast(IO[bytes], sink)  # write/tell/flush is all zipfile uses in "w" mode
    with zipfile.ZipFile(target, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in paths:
            try:
                _, source = resolve_artifact(trial, relative)
            except ArtifactPathError:
                continue
            if not source.is_file():
                continue
            info = zipfile.ZipInfo.from_file(source, arcname=relative)
            info.compress_type = zipfile.ZIP_DEFLATED
            with source.open("rb") as handle, archive.open(info, mode="w") as entry:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    entry.write(chunk)
                    if data := sink.take():
                        yield data
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data


def _files(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    found = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(folder, name)
            found[path.relative_to(root).as_posix()] = path
    return found


def _lines(path: Path) -> list[str] | None:
    try:
        if path.is_symlink():
            return [f"-> {os.readlink(path)}\n"]
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)


def workspace_diff(baseline: Path, workspace: Path, limit_bytes: int = 8 * 1024 * 1024) -> str:
    """A unified diff from the seeded workspace to the final one (``.git`` ignored)."""
    before, after = _files(baseline), _files(workspace)
    chunks: list[str] = []
    size = 0
    for name in sorted(set(before) | set(after)):
        old = _lines(before[name]) if name in before else []
        new = _lines(after[name]) if name in after else []
        if old is None or new is None:
            if (
                name not in before
                or name not in after
                or (before[name].read_bytes() != after[name].read_bytes())
            ):
                chunks.append(f"Binary files a/{name} and b/{name} differ\n")
            continue
        if old == new:
            continue
        diff = difflib.unified_diff(
            old,
            new,
            fromfile=f"a/{name}" if name in before else "/dev/null",
            tofile=f"b/{name}" if name in after else "/dev/null",
        )
        for line in diff:
            text = line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            chunks.append(text)
            size += len(text)
            if size > limit_bytes:
                chunks.append("... diff truncated ...\n")
                return "".join(chunks)
    return "".join(chunks)


def workspace_tarball(workspace: Path, target: Path) -> None:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(workspace, arcname="workspace")
