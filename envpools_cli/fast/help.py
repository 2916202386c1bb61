"""``--help`` without importing the app: the screens Typer printed, kept on disk (issue 12).

``envpools --help`` used to import Typer, Click and every command module (pydantic, the
client...) to print a page of text: ~370 ms on a loaded 2-core machine. The first time a
command's help is asked for after an install or an edit, the real app renders it
(``app.help_screen``: Click's own output, at the width every terminal of 80 columns or
more gets) and it is kept (``<cache dir>/help.marshal``, valid while ``snapshots``'
fingerprint of the package holds); later requests print the stored text.

Only ``envpools [COMMAND...] --help`` (or ``-h`` where it means help) is answered here,
and only on a terminal 80 columns wide or wider (or not a terminal: Click then assumes
80). Anything else - options before ``--help``, an unknown command, a narrow terminal,
a snapshot that cannot be built - returns None and the full CLI prints the help itself.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["HELP_FLAGS", "fast_help"]

HELP_FLAGS = ("--help", "-h")
_WIDTH = 80  # app.HELP_WIDTH_COLUMNS (not imported: that module is what this avoids)


def columns() -> int:
    """``shutil.get_terminal_size().columns``, as Click reads it, without importing shutil."""
    try:
        wanted = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        wanted = 0
    if wanted > 0:
        return wanted
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or _WIDTH  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return _WIDTH


def fast_help(argv: list[str]) -> int | None:
    """Print the stored help for ``argv`` and return 0, or None for the full CLI."""
    if not argv or argv[-1] not in HELP_FLAGS or any(a.startswith("-") for a in argv[:-1]):
        return None
    if columns() < _WIDTH:
        return None
    from envpools_cli import snapshots

    key = " ".join(argv[:-1])
    where = snapshots.path_of("help")
    current = snapshots.fingerprint()
    stored = snapshots.read(where)
    screens = stored.get("screens") if stored.get("fingerprint") == current else None
    if not isinstance(screens, dict):
        screens = {}
    entry = screens.get(key)
    if entry is None:
        # First time for this command since an install or an edit: render it with the
        # real app, keep it. The app stays imported for the full CLI if it is needed.
        try:
            from envpools_cli.app import help_screen

            entry = help_screen(argv[:-1])
        except Exception:  # the full CLI will say what is wrong, in its own words
            return None
        if entry is None:
            return None
        screens[key] = entry
        snapshots.write(where, {"fingerprint": current, "screens": screens})
    if not isinstance(entry, (tuple, list)) or len(entry) != 2 or argv[-1] not in entry[1]:
        return None
    try:
        sys.stdout.write(str(entry[0]))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head -1`: quiet, as the full CLI
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
