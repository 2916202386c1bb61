"""Process start-up compared with an anchor in one run, robust to a busy machine.

The suite runs on two xdist workers on a 2-core CI machine, so another test is usually
busy beside a timing test. Runs of the command and of its anchor alternate (both meet
the same load), and each side keeps its fastest run: load only ever adds time, so the
minimum is the closest to what the command itself costs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence

__all__ = ["fastest_ratio"]


def _seconds(argv: Sequence[str], env: Mapping[str, str] | None) -> float:
    started = time.perf_counter()
    subprocess.run(list(argv), env=dict(env or os.environ), capture_output=True, check=True)
    return time.perf_counter() - started


def fastest_ratio(
    command: Sequence[str],
    anchor: Sequence[str],
    *,
    runs: int = 7,
    env: Mapping[str, str] | None = None,
) -> tuple[float, float, float]:
    """``(ratio, command_seconds, anchor_seconds)``: fastest command run over fastest anchor."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(runs):
        theirs.append(_seconds(anchor, env))
        ours.append(_seconds(command, env))
    best, base = min(ours), min(theirs)
    return best / base, best, base
