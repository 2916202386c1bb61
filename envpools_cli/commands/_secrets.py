"""Reading a secret: from a file, from stdin, or from a hidden prompt. Never from argv."""

from __future__ import annotations

import sys
from pathlib import Path

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.runtime import runtime

__all__ = ["read_secret"]


def read_secret(what: str, value_file: Path | None = None) -> str:
    if value_file is not None:
        if not value_file.is_file():
            raise UsageProblem(f"{value_file}: no such file")
        value = value_file.read_text()
    elif not sys.stdin.isatty():
        value = sys.stdin.read()
    elif runtime.interactive:
        import getpass

        value = getpass.getpass(f"{what} (input hidden): ", stream=sys.stderr)
    else:
        raise UsageProblem(f"pipe the {what} on stdin (it is never taken from arguments)")
    value = value.strip("\r\n")
    if not value.strip():
        raise UsageProblem(f"the {what} is empty")
    return value
