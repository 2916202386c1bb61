"""Answers that must start in about an interpreter's own time, before anything heavy.

``--version``, ``completion <shell>`` and Tab presses (``completion/``), ``--help``
(``help.py``, from the screens ``scripts/update-screens`` generated: ``screens.py``),
plain ``rollouts get/list -o json`` (``read.py``) and ``rollouts tail ID -o jsonl``
(``tail.py``). None of them imports Typer, httpx, pydantic or a command module. Anything
unusual is not answered here: :func:`answer` returns None and the full CLI (``app.py``)
runs the command from the start, with its own messages and exit codes. What these
answers share with the full CLI (statuses, URL rules, option spellings, help width) is in
``envpools_cli/shared.py``, which both import.
"""

from __future__ import annotations

import os
import sys

__all__ = ["COMPLETE_VAR", "answer"]

COMPLETE_VAR = "_ENVPOOLS_COMPLETE"


def answer(argv: list[str]) -> int | None:
    """The exit code of a command answered here, or None for the full CLI."""
    shell = os.environ.get(COMPLETE_VAR)
    if shell:
        from envpools_cli.completion.engine import answer as complete
        from envpools_cli.completion.scripts import SHELLS

        return complete(argv, shell) if shell in SHELLS else 0
    if argv in (["--version"], ["-V"]):
        from envpools_cli import __version__

        sys.stdout.write(f"envpools {__version__}\n")
        return 0
    if len(argv) == 2 and argv[0] == "completion":
        from envpools_cli.completion.scripts import SHELLS, script

        if argv[1] in SHELLS:
            sys.stdout.write(script(argv[1]))
            return 0
    from envpools_cli.shared import HELP_OPTIONS

    if argv[-1:] and argv[-1] in HELP_OPTIONS:
        from envpools_cli.fast.help import fast_help

        return fast_help(argv)
    if argv[:1] == ["rollouts"]:
        from envpools_cli.fast.read import fast_read

        return fast_read(argv)
    return None
