"""``npm install`` of an agent CLI into a folder of its own (``<prefix>/node_modules``)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["NpmError", "npm_install"]

_TIMEOUT = 1800


class NpmError(Exception):
    """An npm install that failed, with what to do about it."""


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def npm_install(
    npm: str, prefix: Path, specs: Sequence[str], progress: Callable[[str], None]
) -> None:
    """``npm install specs`` into ``prefix``; each spec is ``name@version``."""
    shown = " ".join(specs)
    progress(f"npm install {shown} (this downloads a few hundred MB the first time)")
    command = [
        npm,
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
        "--loglevel=error",
        "--",
        *specs,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise NpmError(f"npm install {shown} did not finish in 30 minutes") from None
    if done.returncode != 0:
        raise NpmError(
            f"npm install {shown} failed (exit {done.returncode}):\n"
            f"{_tail(done.stderr or done.stdout)}\n"
            "check that the version exists (`npm view NAME versions`) and that the npm "
            "registry is reachable"
        )
