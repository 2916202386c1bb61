"""Times and sizes as people read them: ages like kubectl ("3m", "2h", "5d"), sizes in KiB/MiB/GiB.

One unit family for sizes everywhere (binary: KiB, MiB, GiB), so two figures on one screen
always compare.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["human_bytes", "parse_time", "relative_age"]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or an offset; naive means UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def relative_age(value: Any, now: datetime | None = None) -> str:
    """How long ago a timestamp was, in the largest whole unit: ``45s``, ``3m``, ``2h``, ``5d``.

    Anything that is not a timestamp prints as ``-``; a time slightly in the future (clock
    skew between the backend and this machine) reads as ``0s``.
    """
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = int(max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(size: Any) -> str:
    """``512 B``, ``1.5 KiB``, ``20.0 MiB``, ``3.2 GiB``; ``-`` for anything not a number."""
    if not isinstance(size, int | float) or isinstance(size, bool):
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
