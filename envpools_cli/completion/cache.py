"""Small private files under the cache dir: the backend values a Tab press offers.

``marshal`` rather than JSON: it is built into the interpreter (``json`` costs ~2 ms to
import, a tenth of a Tab press's budget) and loads faster. The files are private caches
in the user's own cache dir; anything unreadable reads as empty and is rewritten.
"""

from __future__ import annotations

import contextlib
import marshal
import os

from envpools_cli import paths

TYPE_CHECKING = False  # typing costs a Tab press more than this whole module
if TYPE_CHECKING:
    from typing import Any

__all__ = ["path_of", "read", "write"]


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
    ``tests/unit/test_completion_cache.py`` checks that what is stored can be.
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
