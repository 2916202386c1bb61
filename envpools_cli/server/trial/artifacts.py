"""A rollout's artifacts: what its trial folder holds after the run.

The trial folder mirrors Harbor's layout: ``agent/``, ``verifier/`` and ``artifacts/``
(bound at ``/logs/...`` in the sandbox), plus ``workspace.diff``, ``workspace.tar.gz``,
``result.json``, ``trajectory.json`` and ``llm/exchanges.jsonl`` written by the worker
(outside anything the sandbox sees). Paths are relative to the trial folder;
nothing outside those entries is ever served, and every file is opened through
``safefs``: no symlink is followed, no FIFO or device is opened.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from envpools_cli.server.sandbox.safefs import (
    MAX_DEPTH,
    Walk,
    chunks_of,
    open_dir,
    open_dir_at,
    open_file_at,
    open_relative,
    write_at,
)
from envpools_cli.server.trial.scrub import Scrubber

__all__ = [
    "ArtifactPathError",
    "TrialIndex",
    "index_trial",
    "open_artifact",
    "resolve_artifact",
    "zip_stream",
]

LOG_DIRS = ("agent", "verifier", "artifacts")
WORKER_FILES = (
    "workspace.diff",
    "workspace.tar.gz",
    "result.json",
    "trajectory.json",
    "llm/exchanges.jsonl",
)
_TEXT_SUFFIXES = {".txt", ".log", ".diff", ".patch", ".md", ".jsonl", ".sh", ".py", ".toml"}
_CHUNK = 64 * 1024
MAX_INDEXED = 100_000
"""Entries of each /logs folder looked at; the rest is left out of the manifest."""


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


def _valid_name(relative: str) -> bool:
    """Artifact paths travel as JSON and URLs: UTF-8, no backslashes or control characters."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ch == "\\" or ord(ch) < 32 or ord(ch) == 127 for ch in relative)


@dataclass
class TrialIndex:
    """What ``index_trial`` found: manifest entries, and what it left out and why."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    scrubbed: list[str] = field(default_factory=list)

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count


def _entry(relative: str, info: os.stat_result, digest: str) -> dict[str, Any]:
    return {
        "path": relative,
        "size_bytes": info.st_size,
        "sha256": digest,
        "content_type": content_type(relative),
        "provenance": _provenance(relative),
        "created_at": datetime.fromtimestamp(info.st_mtime, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }


def _index_file(
    dir_fd: int, name: str, relative: str, scrubber: Scrubber, found: TrialIndex
) -> None:
    fd = open_file_at(dir_fd, name)
    if fd is None:
        found.skip("not a regular file")
        return
    try:
        if scrubber and scrubber.found_in(chunks_of(fd)):
            os.lseek(fd, 0, os.SEEK_SET)
            write_at(dir_fd, name, scrubber.stream(chunks_of(fd)))
            found.scrubbed.append(relative)
            os.close(fd)
            fd = open_file_at(dir_fd, name)
            if fd is None:
                return
        os.lseek(fd, 0, os.SEEK_SET)
        digest = hashlib.sha256()
        for chunk in chunks_of(fd):
            digest.update(chunk)
        found.entries.append(_entry(relative, os.fstat(fd), digest.hexdigest()))
    finally:
        if fd is not None:
            os.close(fd)


def index_trial(
    trial: Path,
    scrubber: Scrubber | None = None,
    stop: Callable[[], bool] = lambda: False,
    found: TrialIndex | None = None,
) -> TrialIndex:
    """Manifest entries for every regular file an artifact may be.

    The log folders were written by the sandbox: nothing in them is followed, special
    files and names that cannot travel as text are left out (and counted), and a file
    holding a stored credential value is rewritten without it before it is indexed.
    ``found`` is filled as the walk goes, so a caller that stops waiting keeps what is done.
    """
    scrubber = scrubber or Scrubber()
    found = found if found is not None else TrialIndex()
    try:
        trial_fd = open_dir(trial)
    except OSError:
        return found
    try:
        for top in LOG_DIRS:
            try:
                folder = open_dir_at(trial_fd, top)
            except OSError:
                continue
            walk = Walk(folder, max_entries=MAX_INDEXED)
            try:
                for item in walk:
                    if stop():
                        return found
                    relative = f"{top}/{item.path}"
                    if item.is_dir:
                        continue
                    if not item.is_file:
                        found.skip("not a regular file")
                    elif not _valid_name(relative):
                        found.skip("name is not printable UTF-8")
                    else:
                        _index_file(item.dir_fd, item.name, relative, scrubber, found)
            finally:
                os.close(folder)
            too_many = f"more than {MAX_INDEXED:,} entries or deeper than {MAX_DEPTH}"
            found.skip(too_many, walk.skipped)
        for relative in WORKER_FILES:  # written by the backend itself, already scrubbed
            folder_name, _, name = relative.rpartition("/")
            if not os.path.lexists(trial / relative):
                continue
            try:
                folder = open_dir_at(trial_fd, folder_name) if folder_name else trial_fd
            except OSError:
                continue
            try:
                _index_file(folder, name, relative, Scrubber(), found)
            finally:
                if folder != trial_fd:
                    os.close(folder)
    finally:
        os.close(trial_fd)
    return found


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
    return relative, trial.joinpath(*parts)


def open_artifact(trial: Path, relative: str) -> int | None:
    """A descriptor of the artifact's regular file, reached through directories only."""
    return open_relative(trial, relative.split("/"))


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
                relative, _ = resolve_artifact(trial, relative)
            except ArtifactPathError:
                continue
            fd = open_artifact(trial, relative)
            if fd is None:
                continue
            status = os.fstat(fd)
            stamp = datetime.fromtimestamp(status.st_mtime).timetuple()[:6]
            info = zipfile.ZipInfo(relative, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.external_attr = (status.st_mode & 0xFFFF) << 16
            info.file_size = status.st_size
            info.compress_type = zipfile.ZIP_DEFLATED
            with os.fdopen(fd, "rb") as handle, archive.open(info, mode="w") as entry:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    entry.write(chunk)
                    if data := sink.take():
                        yield data
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data
