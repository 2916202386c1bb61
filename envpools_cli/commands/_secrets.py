"""Reading a secret: from a file, from stdin, or from a hidden prompt. Never from argv."""

from __future__ import annotations

import sys
from pathlib import Path

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._options import read_text
from envpools_cli.runtime import runtime

__all__ = ["read_secret"]


def read_secret(what: str, value_file: Path | None = None) -> str:
    if value_file is not None:
        value, _ = read_text(value_file, stdin_ok=False)
    elif not sys.stdin.isatty():
        value, _ = read_text("-")
    elif runtime.interactive:
        import getpass

        value = getpass.getpass(f"{what} (input hidden): ", stream=sys.stderr)
    else:
        raise UsageProblem(f"pipe the {what} on stdin (it is never taken from arguments)")
    value = value.strip("\r\n")
    if not value.strip():
        raise UsageProblem(f"the {what} is empty")
    return value
