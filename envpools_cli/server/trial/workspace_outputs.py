"""What the backend builds from a finished workspace: ``workspace.diff`` and ``workspace.tar.gz``.

The workspace was last written by the sandbox, so both are built through ``safefs``:
nothing is followed, FIFOs/sockets/devices are listed but never opened, any byte sequence
in a name is carried (escaped in the diff, raw in the tarball), files are streamed in
chunks (a file too big to diff is compared by hash), and both outputs pass through the
rollout's ``Scrubber`` so stored credential values never reach them.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from envpools_cli.server.sandbox.safefs import (
    Walk,
    chunks_of,
    create_at,
    open_dir,
    open_relative,
    read_up_to,
)
from envpools_cli.server.trial.scrub import Scrubber

__all__ = ["Stopped", "write_diff", "write_tarball"]

DIFF_LIMIT = 8 * 1024 * 1024
TEXT_DIFF_LIMIT = 1024 * 1024
"""Files bigger than this are compared by hash, not line by line."""
_SKIP = (".git",)


class Stopped(Exception):
    """The finishing step was told to stop (cancel, or its time ran out)."""


@dataclass(frozen=True)
class _Item:
    kind: str  # file, link, dir, special
    size: int
    target: str = ""


def _snapshot(root: Path) -> tuple[dict[str, _Item], int]:
    """Everything under ``root`` (nothing opened but directories), and how much was left out."""
    try:
        fd = open_dir(root)
    except OSError:
        return {}, 0
    found: dict[str, _Item] = {}
    try:
        walk = Walk(fd, skip=_SKIP)
        for entry in walk:
            if entry.is_file:
                found[entry.path] = _Item("file", entry.info.st_size)
            elif entry.is_link:
                found[entry.path] = _Item("link", 0, entry.link_target())
            elif entry.special:
                found[entry.path] = _Item("special", 0, _special_kind(entry.info.st_mode))
        return found, walk.skipped
    finally:
        os.close(fd)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def display(name: str) -> str:
    """A name as text: undecodable bytes as ``\\xNN`` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _digest(root: Path, name: str) -> str | None:
    fd = open_relative(root, name.split("/"))
    if fd is None:
        return None
    try:
        digest = hashlib.sha256()
        for chunk in chunks_of(fd):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def _head(root: Path, name: str) -> bytes | None:
    fd = open_relative(root, name.split("/"))
    if fd is None:
        return None
    try:
        return read_up_to(fd, TEXT_DIFF_LIMIT + 1)
    finally:
        os.close(fd)


def _text_lines(data: bytes) -> list[str] | None:
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)


def _diff_chunks(
    baseline: Path, workspace: Path, scrubber: Scrubber, stop: Callable[[], bool], limit: int
) -> Iterator[bytes]:
    before, skipped_before = _snapshot(baseline)
    after, skipped_after = _snapshot(workspace)
    size = 0

    def emit(text: str) -> bytes:
        return scrubber.text(text).encode("utf-8", "surrogateescape")

    for name in sorted(set(before) | set(after)):
        if stop():
            raise Stopped()
        old, new = before.get(name), after.get(name)
        shown = display(name)
        lines = _entry_diff(baseline, workspace, name, shown, old, new)
        for line in lines:
            text = line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            size += len(text)
            yield emit(text)
            if size > limit:
                yield b"... diff truncated ...\n"
                return
    if skipped_before or skipped_after:
        left_out = skipped_before + skipped_after
        yield f"... {left_out} entries not compared (too many or too deep)\n".encode()


def _entry_diff(
    baseline: Path,
    workspace: Path,
    name: str,
    shown: str,
    old: _Item | None,
    new: _Item | None,
) -> Iterator[str]:
    if old == new and (old is None or old.kind in ("link", "special")):
        return
    if (old and old.kind == "special") or (new and new.kind == "special"):
        item = new if new and new.kind == "special" else old
        assert item is not None
        yield f"Special file {shown} ({item.target}) not compared\n"
        return
    big_twins = (
        old is not None
        and new is not None
        and old.kind == new.kind == "file"
        and old.size == new.size > TEXT_DIFF_LIMIT
    )
    if big_twins and _digest(baseline, name) == _digest(workspace, name):
        return
    if max(old.size if old else 0, new.size if new else 0) > TEXT_DIFF_LIMIT:
        yield f"Files a/{shown} and b/{shown} differ (too large to compare line by line)\n"
        return
    old_lines = _lines_of(baseline, name, old)
    new_lines = _lines_of(workspace, name, new)
    if old_lines is None or new_lines is None:
        if old is None or new is None or _head(baseline, name) != _head(workspace, name):
            yield f"Binary files a/{shown} and b/{shown} differ\n"
        return
    if old_lines == new_lines:
        return
    yield from difflib.unified_diff(
        old_lines,
        new_lines,
        fromfile=f"a/{shown}" if old else "/dev/null",
        tofile=f"b/{shown}" if new else "/dev/null",
    )


def _lines_of(root: Path, name: str, item: _Item | None) -> list[str] | None:
    if item is None:
        return []
    if item.kind == "link":
        return [f"-> {display(item.target)}\n"]
    data = _head(root, name)
    return [] if data is None else _text_lines(data)


def write_diff(
    baseline: Path,
    workspace: Path,
    out_dir: Path,
    *,
    scrubber: Scrubber,
    stop: Callable[[], bool] = lambda: False,
    limit_bytes: int = DIFF_LIMIT,
) -> None:
    """``out_dir/workspace.diff``: a unified diff from the seeded workspace to the final one."""
    out = open_dir(out_dir)
    try:
        with create_at(out, "workspace.diff") as handle:
            for chunk in _diff_chunks(baseline, workspace, scrubber, stop, limit_bytes):
                handle.write(chunk)
    finally:
        os.close(out)


def _scrubbed_copy(fd: int, scrubber: Scrubber, scratch: Path) -> IO[bytes] | None:
    """A scrubbed temporary copy when the file holds a credential value, else None."""
    if not scrubber.found_in(chunks_of(fd)):
        return None
    os.lseek(fd, 0, os.SEEK_SET)
    copy = tempfile.TemporaryFile(dir=scratch)  # noqa: SIM115 - the caller closes it
    for chunk in scrubber.stream(chunks_of(fd)):
        copy.write(chunk)
    copy.seek(0)
    return copy


def write_tarball(
    workspace: Path,
    out_dir: Path,
    *,
    scrubber: Scrubber,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """``out_dir/workspace.tar.gz``: the final workspace (links as links, no special files)."""
    root = open_dir(workspace)
    out = open_dir(out_dir)
    try:
        with (
            create_at(out, "workspace.tar.gz") as handle,
            tarfile.open(fileobj=handle, mode="w|gz", format=tarfile.PAX_FORMAT) as archive,
        ):
            for entry in Walk(root):
                if stop():
                    raise Stopped()
                info = tarfile.TarInfo("workspace/" + entry.path)
                info.mode = stat.S_IMODE(entry.info.st_mode)
                info.mtime = int(entry.info.st_mtime)
                if entry.is_dir:
                    info.type = tarfile.DIRTYPE
                    archive.addfile(info)
                elif entry.is_link:
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.link_target()
                    archive.addfile(info)
                elif entry.is_file:
                    _add_file(archive, info, entry.open(), scrubber, out_dir)
    finally:
        os.close(root)
        os.close(out)


def _add_file(
    archive: tarfile.TarFile,
    info: tarfile.TarInfo,
    fd: int | None,
    scrubber: Scrubber,
    scratch: Path,
) -> None:
    if fd is None:
        return
    with os.fdopen(fd, "rb") as source:
        copy = _scrubbed_copy(fd, scrubber, scratch) if scrubber else None
        if copy is not None:
            with copy:
                info.size = copy.seek(0, os.SEEK_END)
                copy.seek(0)
                archive.addfile(info, copy)
            return
        source.seek(0)
        info.size = os.fstat(fd).st_size
        archive.addfile(info, source)
