"""A task's build context, copied into a folder of the backend's before the builder sees it.

The builder follows symbolic links in its context when it resolves a ``RUN --mount``
source (CVE-2024-1753: ``environment/rootlink -> /`` mounted the host's root). The copy
keeps directories, regular files and the symbolic links that resolve inside the copy;
a link that leads out of it (an absolute target, ``..`` past the top, a chain of links
that ends outside) is left out, and so are devices, fifos and sockets. Files are opened
without following links, so nothing outside ``environment/`` is read on the way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["copy_context"]

_CHUNK = 1 << 20


def copy_context(source: Path, target: Path, *, owner: tuple[int, int] | None = None) -> list[str]:
    """Copy ``source`` into ``target`` (made here); what was left out, as relative paths.

    With ``owner`` (uid, gid), everything copied belongs to that user (a build that runs
    as an unprivileged uid must read all of it).
    """
    target.mkdir(mode=0o700)
    left_out: list[str] = []
    links: list[Path] = []
    _copy_tree(source, target, Path(), left_out, links)
    _drop_escaping_links(target, links, left_out)
    if owner is not None:
        for root, dirs, files in os.walk(target):
            os.lchown(root, *owner)
            for name in (*dirs, *files):
                os.lchown(os.path.join(root, name), *owner)
    return sorted(left_out)


def _copy_tree(
    source: Path, target: Path, relative: Path, left_out: list[str], links: list[Path]
) -> None:
    with os.scandir(source) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            info = entry.stat(follow_symlinks=False)
            here = relative / entry.name
            to = target / entry.name
            if stat.S_ISDIR(info.st_mode):
                to.mkdir(mode=0o700)
                _copy_tree(Path(entry.path), to, here, left_out, links)
                os.chmod(to, stat.S_IMODE(info.st_mode) | 0o700)
            elif stat.S_ISREG(info.st_mode):
                _copy_file(Path(entry.path), to, stat.S_IMODE(info.st_mode))
            elif stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(entry.path), to)
                links.append(to)
            else:
                left_out.append(here.as_posix())


def _copy_file(source: Path, target: Path, mode: int) -> None:
    # O_NOFOLLOW: a file swapped for a link after the scan is refused, not followed.
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(fd, _CHUNK):
                os.write(out, chunk)
            os.fchmod(out, mode & 0o7777 & ~0o6000)  # no set-uid/set-gid bits from a task
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _drop_escaping_links(target: Path, links: list[Path], left_out: list[str]) -> None:
    """Remove links that resolve outside ``target``, until none is left.

    Resolution is the kernel's (``realpath`` of the copy), so a chain of links that each
    look harmless but together climb out is caught. Removing a link can only make others
    dangle inside the copy, never escape: one pass per removal round is enough.
    """
    root = os.path.realpath(target)
    remaining = list(links)
    changed = True
    while changed:
        changed = False
        for link in list(remaining):
            if not _inside(root, os.path.realpath(link)):
                link.unlink()
                remaining.remove(link)
                left_out.append(link.relative_to(target).as_posix())
                changed = True
