"""``--help`` without importing the app: the screens the full CLI prints, generated.

``envpools --help`` through Typer imports Typer and builds the command to print a page
of text. ``scripts/update-screens`` renders every screen with the real app
(``app.help_screen``: Click's own output at ``HELP_WIDTH`` columns, what every terminal
that wide or wider gets) into ``screens.py``, and a test fails when one is stale; this
prints them.

Only ``envpools [COMMAND...] --help`` (or ``-h`` where it means help) is answered here,
and only on a terminal ``HELP_WIDTH`` columns wide or wider (or not a terminal: Click
then assumes 80). Anything else - options before ``--help``, an unknown command, a
narrow terminal - returns None and the full CLI prints the help itself.
"""

from __future__ import annotations

import contextlib
import os
import sys

from envpools_cli.shared import HELP_OPTIONS, HELP_WIDTH

__all__ = ["columns", "fast_help"]


def columns() -> int:
    """``shutil.get_terminal_size().columns``, as Click reads it, without importing shutil."""
    try:
        wanted = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        wanted = 0
    if wanted > 0:
        return wanted
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or HELP_WIDTH  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return HELP_WIDTH


def fast_help(argv: list[str]) -> int | None:
    """Print the help screen for ``argv`` and return 0, or None for the full CLI."""
    if not argv or argv[-1] not in HELP_OPTIONS or any(a.startswith("-") for a in argv[:-1]):
        return None
    if columns() < HELP_WIDTH:
        return None
    from envpools_cli.fast.screens import SCREENS

    entry = SCREENS.get(" ".join(argv[:-1]))
    if entry is None or argv[-1] not in entry[1]:
        return None
    try:
        sys.stdout.write(entry[0])
        sys.stdout.flush()
    except BrokenPipeError:  # `| head -1`: quiet, as the full CLI
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
