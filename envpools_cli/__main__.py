"""Entry point. ``--version``, ``completion`` and plain reads (``fastpath.py``) answer before
anything heavy is imported."""

from __future__ import annotations

import os
import sys

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_ENVPOOLS_COMPLETE"


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="envpools", complete_var=COMPLETE_VAR, shell=shell)


def _fast(argv: list[str]) -> int | None:
    if os.environ.get(COMPLETE_VAR):
        return None  # a Tab press: the full app answers
    if argv in (["--version"], ["-V"]):
        from envpools_cli import __version__

        sys.stdout.write(f"envpools {__version__}\n")
        return 0
    if len(argv) == 2 and argv[0] == "completion" and argv[1] in SHELLS:
        sys.stdout.write(completion_script(argv[1]))
        return 0
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
