"""Running out of disk or of open files is its own error, said plainly, never blamed on a task.

``disk_full``: the filesystem of the data folder (the database, every trial's workspace)
has no room, or less than the floor the backend keeps free for what is already running.
``resource_exhausted``: the backend cannot open another file (``EMFILE``/``ENFILE``, or
SQLite's "unable to open database file" at the open-files limit).

Both are recognised from what failed (an ``OSError``, an ``sqlite3.Error``, anywhere in an
exception's chain), so every layer says the same: a rollout ends ``error`` with the code
and a message naming what is full and how much is needed; a create is answered 507 or 503.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import sqlite3
from pathlib import Path

__all__ = [
    "DISK_FULL",
    "RESOURCE_EXHAUSTED",
    "Exhausted",
    "disk_full",
    "exhaustion",
    "free_bytes",
    "low_on_disk",
    "open_files_exhausted",
]

DISK_FULL = "disk_full"
RESOURCE_EXHAUSTED = "resource_exhausted"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NO_FILES = {errno.EMFILE, errno.ENFILE}


class Exhausted(Exception):
    """The machine ran out of something the backend needs (not the task's fault)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        """507 Insufficient Storage for a full disk, 503 for anything else."""
        return 507 if self.code == DISK_FULL else 503

    def as_error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def free_bytes(data_dir: Path) -> int | None:
    """Bytes an unprivileged writer may still use where ``data_dir`` lives (None: unknown)."""
    try:
        stats = os.statvfs(data_dir)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def disk_full(data_dir: Path, floor_mb: int | None = None) -> Exhausted:
    """What is full (the data folder's filesystem, its size and what is left) and what is needed."""
    try:
        total = _size(shutil.disk_usage(data_dir).total)
    except OSError:
        total = "unknown size"
    free = free_bytes(data_dir)
    left = "unknown" if free is None else _size(free)
    needed = (
        f"it keeps at least {floor_mb} MB free (ENVPOOLS_MIN_FREE_MB) for running rollouts"
        if floor_mb
        else "it needs room for each rollout's workspace, logs and events"
    )
    return Exhausted(
        DISK_FULL,
        f"the disk of the local backend's data folder {data_dir} is full ({left} free of "
        f"{total}); {needed}: free some space there (old trials are in {data_dir / 'trials'})",
    )


def low_on_disk(data_dir: Path, floor_mb: int) -> Exhausted | None:
    """``disk_full`` when less than ``floor_mb`` is free: new rollouts are refused then."""
    free = free_bytes(data_dir)
    if floor_mb <= 0 or free is None or free >= floor_mb * 1024 * 1024:
        return None
    return disk_full(data_dir, floor_mb)


def _open_files() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def open_files_exhausted() -> Exhausted:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = _open_files()
    now = f"{count} files open, " if count is not None else ""
    return Exhausted(
        RESOURCE_EXHAUSTED,
        f"the local backend ran out of open files ({now}its limit is {soft}, hard limit "
        f"{hard}); raise the hard limit (ulimit -Hn, or LimitNOFILE= for a service) or run "
        "fewer rollouts at once (ENVPOOLS_MAX_RUNNING)",
    )


def _near_file_limit() -> bool:
    count = _open_files()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return count is None or soft == resource.RLIM_INFINITY or count >= soft - 16


def _classify(exc: BaseException, data_dir: Path) -> Exhausted | None:
    if isinstance(exc, Exhausted):
        return exc
    if isinstance(exc, shutil.Error):  # copytree's: one "[Errno N] ..." text per file
        text = str(exc.args)
        if any(f"[Errno {n}]" in text for n in _NO_SPACE):
            return disk_full(data_dir)
        if any(f"[Errno {n}]" in text for n in _NO_FILES):
            return open_files_exhausted()
    elif isinstance(exc, OSError):
        if exc.errno in _NO_SPACE:
            return disk_full(data_dir)
        if exc.errno in _NO_FILES:
            return open_files_exhausted()
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc).lower()
        if primary == sqlite3.SQLITE_FULL or "database or disk is full" in text:
            return disk_full(data_dir)
        opening = primary == sqlite3.SQLITE_CANTOPEN or "unable to open database" in text
        if opening and _near_file_limit():
            return open_files_exhausted()
    return None


def exhaustion(exc: BaseException, data_dir: Path) -> Exhausted | None:
    """The exhaustion behind ``exc`` (itself, its cause or its context), if it is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (found := _classify(current, data_dir)) is not None:
            return found
        current = current.__cause__ or current.__context__
    return None
