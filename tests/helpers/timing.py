"""Process start-up compared with an anchor in one run, robust to a busy machine.

The suite runs on two xdist workers on a 2-core CI machine, so another test is usually
busy beside a timing test. The command and its anchor take turns (``bench.run.interleave``,
as the benchmark measures them), so both meet the same load, and each side keeps its
fastest run: load only ever adds time, so the minimum is the closest to what the command
itself costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.run import interleave

__all__ = ["fastest_ratio"]


def fastest_ratio(
    command: Sequence[str],
    anchor: Sequence[str],
    *,
    runs: int = 7,
    env: Mapping[str, str] | None = None,
) -> tuple[float, float, float]:
    """``(ratio, command_seconds, anchor_seconds)``: fastest command run over fastest anchor.

    ``env``: variables added to this process's environment for both commands.
    """
    samples = interleave({"anchor": list(anchor), "command": list(command)}, runs, dict(env or {}))
    best = min(sample.wall for sample in samples["command"])
    base = min(sample.wall for sample in samples["anchor"])
    return best / base, best, base
