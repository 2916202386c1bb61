"""What the Typer app says, kept on disk while the package is unchanged (issue 12).

Importing the app and every command module costs most of a second on a loaded machine,
yet a Tab press (the command tree) and ``--help`` (the help screens) only read what the
app would say. Both are built from the app itself, once, and kept in
``<cache dir>/<name>.marshal`` with a fingerprint of the package (version, Python, and the
size + mtime of its source files, and the mtime of site-packages, which an install or
upgrade of any package moves): an upgrade or an edit rebuilds them on the next use.

``marshal`` rather than JSON: it is built into the interpreter (``json`` costs ~2 ms to
import, a tenth of the budget) and loads faster. The files are private caches in the
user's own cache dir; anything unreadable is rebuilt.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys

from envpools_cli import __version__, paths

TYPE_CHECKING = False  # typing costs a Tab press more than this whole module
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["fingerprint", "load", "path_of", "read", "write"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# Where the command tree, its help and the value lists it records are defined. The
# server is not: nothing it holds reaches a help screen or a completion.
_WATCHED = ("", "commands", "output", "completion", "jobs", "client")


def fingerprint() -> str:
    """Cheap enough for every Tab press: ~100 stats."""
    parts = [__version__, sys.version]
    # An install or upgrade in the environment (Typer, Click: they render the help) adds
    # and removes entries in site-packages, which moves the folder's mtime: one stat each.
    for folder in sys.path:
        if folder.endswith(("site-packages", "dist-packages")):
            with contextlib.suppress(OSError):
                parts.append(f"{folder}:{os.stat(folder).st_mtime_ns}")
    for sub in _WATCHED:
        try:
            entries = sorted(os.scandir(os.path.join(_PACKAGE, sub)), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py"):
                stat = entry.stat()
                parts.append(f"{sub}/{entry.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def path_of(name: str) -> str:
    return os.path.join(paths.cache_dir(), f"{name}.marshal")


def read(path: str) -> dict[str, Any]:
    """The dict stored at ``path``; ``{}`` when missing or unreadable."""
    try:
        with open(path, "rb") as stream:
            data = marshal.loads(stream.read())  # marshal.load(stream): a read per object
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically (0600); a cache that cannot be written only costs speed.

    ``data`` holds plain values only (str, not a StrEnum: marshal refuses subclasses);
    ``tests/unit/test_snapshots.py`` checks that what is stored can be.
    """
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as stream:
            marshal.dump(data, stream)
        os.replace(temporary, path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def load(name: str, build: Callable[[], Any]) -> Any:
    """The snapshot ``name`` if it matches the installed package, else ``build()`` (saved)."""
    current = fingerprint()
    path = path_of(name)
    stored = read(path)
    if stored.get("fingerprint") == current and "data" in stored:
        return stored["data"]
    data = build()
    write(path, {"fingerprint": current, "data": data})
    return data
