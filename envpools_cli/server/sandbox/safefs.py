"""Files in folders a sandbox controls, opened without following anything it planted.

Everything under a trial's workspace and ``/logs`` folders was last written by the
sandbox, and the backend (often root) must treat every name there as hostile: a symlink
may point anywhere on the host, a FIFO blocks whoever opens it, a name may be any bytes,
a file may be huge. So every access here is relative to a directory file descriptor,
opened with ``O_NOFOLLOW``; only regular files and directories are ever opened (FIFOs,
sockets and devices are seen by ``lstat`` and skipped); writes go to a fresh temporary
name and are renamed into place, which replaces a planted link instead of writing
through it; and reads are chunked or bounded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHUNK",
    "Entry",
    "Usage",
    "Walk",
    "chown_tree",
    "chunks_of",
    "create_at",
    "open_dir",
    "open_dir_at",
    "open_file_at",
    "open_relative",
    "read_at",
    "read_up_to",
    "tree_usage",
    "write_at",
]

CHUNK = 64 * 1024
MAX_DEPTH = 256
"""Folders deeper than this are not walked (and count as a broken storage limit)."""
MAX_ENTRIES = 1_000_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: should a FIFO appear between lstat and open, open() returns at once.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_dir(path: Path | str) -> int:
    """A directory the backend made itself; only its last component must not be a link."""
    return os.open(path, _DIR_FLAGS)


def open_dir_at(dir_fd: int, name: str) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def open_file_at(dir_fd: int, name: str) -> int | None:
    """A regular file's descriptor, or None for anything else (link, FIFO, device, ...)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def open_relative(root: Path, parts: Iterable[str]) -> int | None:
    """The regular file at ``root/parts...``, through directories only, or None."""
    names = list(parts)
    if not names:
        return None
    try:
        current = open_dir(root)
    except OSError:
        return None
    try:
        for name in names[:-1]:
            following = open_dir_at(current, name)
            os.close(current)
            current = following
        return open_file_at(current, names[-1])
    except OSError:
        return None
    finally:
        os.close(current)


def read_at(dir_fd: int, name: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a regular file, or None when there is none by that name."""
    fd = open_file_at(dir_fd, name)
    if fd is None:
        return None
    try:
        return read_up_to(fd, limit)
    finally:
        os.close(fd)


@contextlib.contextmanager
def create_at(dir_fd: int, name: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A new file that replaces ``name`` once the block ends without an error.

    Whatever ``name`` was (a link to a host file, a FIFO, a hard link) is replaced, not
    written through; a directory by that name makes this raise ``IsADirectoryError``.
    """
    temporary = f".envpools-{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def write_at(dir_fd: int, name: str, chunks: Iterable[bytes], mode: int = 0o644) -> None:
    """Replace ``name`` with a new regular file holding ``chunks`` (see ``create_at``)."""
    with create_at(dir_fd, name, mode) as handle:
        for chunk in chunks:
            handle.write(chunk)


def read_up_to(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd``'s current position."""
    parts: list[bytes] = []
    left = limit
    while left > 0 and (chunk := os.read(fd, min(left, CHUNK))):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def chunks_of(fd: int) -> Iterator[bytes]:
    """``fd``'s bytes from its current position to the end, a chunk at a time."""
    while chunk := os.read(fd, CHUNK):
        yield chunk


@dataclass(frozen=True)
class Entry:
    path: str
    """Relative to the walked root, ``/``-separated; undecodable bytes as surrogates."""
    name: str
    dir_fd: int
    """The open parent directory: valid only until the walk moves on."""
    info: os.stat_result

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.info.st_mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.info.st_mode)

    @property
    def special(self) -> bool:
        """A FIFO, socket or device: never opened."""
        return not (self.is_file or self.is_dir or self.is_link)

    def open(self) -> int | None:
        return open_file_at(self.dir_fd, self.name)

    def link_target(self) -> str:
        try:
            return os.readlink(self.name, dir_fd=self.dir_fd)
        except OSError:
            return "?"


class Walk:
    """Every entry under a directory, depth first in name order, never following a link.

    ``max_entries`` and ``max_depth`` bound the work a planted tree can cause; what was
    left out is counted in ``skipped``.
    """

    def __init__(
        self,
        root_fd: int,
        *,
        skip: Iterable[str] = (),
        max_entries: int = 200_000,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self.root_fd = root_fd
        self.skip = frozenset(skip)
        self.max_entries = max_entries
        self.max_depth = max_depth
        self.seen = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[Entry]:
        yield from self._walk(self.root_fd, "", 0)

    def _walk(self, dir_fd: int, prefix: str, depth: int) -> Iterator[Entry]:
        try:
            with os.scandir(dir_fd) as listing:
                names = sorted(entry.name for entry in listing)
        except OSError:
            return
        for name in names:
            if name in self.skip:
                continue
            if self.seen >= self.max_entries:
                self.skipped += 1
                continue
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            self.seen += 1
            entry = Entry(prefix + name, name, dir_fd, info)
            yield entry
            if not entry.is_dir:
                continue
            if depth >= self.max_depth:
                self.skipped += 1
                continue
            try:
                child = open_dir_at(dir_fd, name)
            except OSError:
                continue
            try:
                yield from self._walk(child, entry.path + "/", depth + 1)
            finally:
                os.close(child)


@dataclass(frozen=True)
class Usage:
    bytes: int
    entries: int
    complete: bool
    """False when a tree held more than ``MAX_ENTRIES`` entries or was deeper than ``MAX_DEPTH``."""


def tree_usage(roots: Iterable[Path], *, max_entries: int = MAX_ENTRIES) -> Usage:
    """Disk the trees use (allocated blocks, so sparse files count what they hold)."""
    total = entries = 0
    complete = True
    for root in roots:
        try:
            fd = open_dir(root)
        except OSError:
            continue
        try:
            total += os.fstat(fd).st_blocks * 512
            walk = Walk(fd, max_entries=max_entries - entries)
            for entry in walk:
                total += entry.info.st_blocks * 512
            entries += walk.seen
            complete = complete and not walk.skipped
        finally:
            os.close(fd)
    return Usage(total, entries, complete)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give a tree the backend built to the sandbox's user, links included, following none."""
    fd = open_dir(root)
    try:
        os.chown(fd, uid, gid)
        for entry in Walk(fd, max_entries=10_000_000):
            os.chown(entry.name, uid, gid, dir_fd=entry.dir_fd, follow_symlinks=False)
    finally:
        os.close(fd)
