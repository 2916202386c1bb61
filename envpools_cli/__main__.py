"""Entry point. ``--version``, ``completion``, ``--help`` (``fasthelp.py``) and plain reads
(``fastpath.py``) answer before anything heavy is imported."""

from __future__ import annotations

import os
import sys

COMPLETE_VAR = "_ENVPOOLS_COMPLETE"


def _fast(argv: list[str]) -> int | None:
    shell = os.environ.get(COMPLETE_VAR)
    if shell:
        from envpools_cli.completion.engine import answer
        from envpools_cli.completion.scripts import SHELLS

        return answer(argv, shell) if shell in SHELLS else 0
    if argv in (["--version"], ["-V"]):
        from envpools_cli import __version__

        sys.stdout.write(f"envpools {__version__}\n")
        return 0
    if len(argv) == 2 and argv[0] == "completion":
        from envpools_cli.completion.scripts import SHELLS, script

        if argv[1] in SHELLS:
            sys.stdout.write(script(argv[1]))
            return 0
    if argv[-1:] in (["--help"], ["-h"]):
        from envpools_cli.fasthelp import fast_help

        return fast_help(argv)
    if argv[:1] == ["rollouts"]:
        from envpools_cli.fastpath import fast_read

        return fast_read(argv)
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    code = _fast(args)
    if code is None:
        from envpools_cli.app import run

        code = run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
