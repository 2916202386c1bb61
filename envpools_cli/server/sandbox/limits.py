"""What one sandbox may use: defaults, what a task may ask for, and the backend's ceiling.

A task asks in ``task.toml`` ``[environment]`` (Harbor's ``cpus``, ``memory_mb``,
``storage_mb``, the older ``memory = "2G"`` / ``storage = "10G"``, and this backend's
``processes``, ``file_mb``, ``open_files``, ``tmp_mb``, ``output_mb``), a pool task in its
``resources``. Each value is clamped to the backend's maximum; the rollout's events say
when a request was lowered. How each limit is enforced is in ``drivers.py``.
"""

from __future__ import annotations

import dataclasses
import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAXIMA",
    "FILES_PER_ROLLOUT",
    "FILES_RESERVED",
    "Limits",
    "OpenFiles",
    "OpenFilesTooLow",
    "asked_resources",
    "fit_open_files",
    "open_files_hard_limit",
    "parse_limits",
    "plan_open_files",
    "raise_open_files",
    "resolve_limits",
]


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    """Resident memory of the whole sandbox (its cgroup: ``cgroups.py``), and the size cap
    of ``/tmp`` and ``/dev/shm``."""
    processes: int = 512
    """Processes and threads at once, in the sandbox's own user namespace."""
    file_mb: int = 1024
    """The largest file a process may write."""
    open_files: int = 4096
    tmp_mb: int = 512
    """Size of the private ``/tmp`` (and ``/dev/shm``); never above ``memory_mb``."""
    storage_mb: int = 10240
    """Disk the workspace and ``/logs`` may use; more ends the rollout (``storage_limit``)."""
    output_mb: int = 8
    """Output of each phase kept as events and in its log; the rest is dropped."""
    output_lines: int = 20000
    """Lines of each phase kept as events; the rest is dropped."""
    cpus: int | None = None
    """Recorded (Harbor's field); bounded only where a cgroup is available."""

    @property
    def tmp_bytes(self) -> int:
        return min(self.tmp_mb, self.memory_mb) * 1024 * 1024

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


DEFAULT_LIMITS = Limits()
DEFAULT_MAXIMA = Limits(
    memory_mb=16384,
    processes=4096,
    file_mb=16384,
    open_files=65536,
    tmp_mb=8192,
    storage_mb=102400,
    output_mb=64,
    output_lines=200000,
    cpus=None,
)
_FIELDS = {f.name for f in dataclasses.fields(Limits)}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_UNIT_MB = {"": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def _megabytes(value: Any) -> int | None:
    """Harbor's deprecated ``memory = "2G"`` / ``storage = "10G"`` strings."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return max(1, int(float(match[1]) * _UNIT_MB[match[2].lower()]))
    return None


def _wanted(source: Mapping[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for old, new in (("memory", "memory_mb"), ("storage", "storage_mb")):
        if old in source and (size := _megabytes(source[old])) is not None:
            found[new] = size
    for name in _FIELDS:
        value = source.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            found[name] = int(value)
    return found


def asked_resources(*sources: Mapping[str, Any] | None) -> dict[str, float]:
    """What the sources ask for, as written (later sources win; ``cpus`` may be a fraction)."""
    wanted: dict[str, float] = {}
    for source in sources:
        if not source:
            continue
        wanted.update(_wanted(source))
        cpus = source.get("cpus")
        if isinstance(cpus, int | float) and not isinstance(cpus, bool) and cpus > 0:
            wanted["cpus"] = float(cpus)
    return wanted


def resolve_limits(
    *sources: Mapping[str, Any] | None,
    defaults: Limits = DEFAULT_LIMITS,
    maxima: Limits = DEFAULT_MAXIMA,
) -> tuple[Limits, list[str]]:
    """The limits for one rollout (later sources win) and notes on what was lowered."""
    wanted: dict[str, int] = {}
    for source in sources:
        if source:
            wanted.update(_wanted(source))
    values: dict[str, Any] = dataclasses.asdict(defaults)
    notes = []
    for name, value in wanted.items():
        ceiling = getattr(maxima, name)
        if ceiling is not None and value > ceiling:
            notes.append(
                f"{name} {value} asked by the task is above this backend's maximum "
                f"{ceiling}: using {ceiling}"
            )
            value = ceiling
        values[name] = value
    return Limits(**values), notes


def parse_limits(text: str | None, base: Limits) -> Limits:
    """``memory_mb=4096,processes=1024``: settings from the environment."""
    if not text:
        return base
    values: dict[str, Any] = {}
    for item in text.split(","):
        name, _, raw = item.strip().partition("=")
        if not name:
            continue
        if name not in _FIELDS or not raw.strip().isdigit() or int(raw) <= 0:
            raise ValueError(
                f"{item.strip()!r}: expected NAME=POSITIVE_INTEGER, NAME one of "
                + ", ".join(sorted(_FIELDS))
            )
        values[name] = int(raw)
    return dataclasses.replace(base, **values)


# --- the backend's own open files -------------------------------------------------------------

#: Descriptors one running rollout holds in the backend: its thread's SQLite connection
#: (database and WAL), the sandbox's output pipe and the descriptors handed to bubblewrap,
#: the watchdog's folder walks; measured at ~4, counted twice over.
FILES_PER_ROLLOUT = 8
#: The backend without rollouts: listening and client sockets, SQLite, Python, uvicorn.
FILES_RESERVED = 256


class OpenFilesTooLow(RuntimeError):
    """The hard open-files limit leaves no room for even one rollout."""


@dataclass(frozen=True)
class OpenFiles:
    soft: int
    hard: int
    max_running: int
    """Rollouts that may run at once within the limit (at most the one asked for)."""
    warning: str | None = None


def open_files_hard_limit() -> int | None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return None if hard == resource.RLIM_INFINITY else int(hard)


def raise_open_files() -> tuple[int, int]:
    """This process's open-files soft limit raised to its hard limit: ``(soft, hard)`` after.

    The soft limit is often 1024 while the hard limit allows far more; a backend running a
    few hundred rollouts needs more than 1024 (``FILES_PER_ROLLOUT``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return int(soft), int(hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return int(soft), int(hard)  # not allowed here: what there is
    return int(wanted), int(hard)


def plan_open_files(soft: int, hard: int, max_running: int) -> OpenFiles:
    """How many rollouts fit under the (raised) limit, and what to say when it is too low.

    Raises ``OpenFilesTooLow`` when not even one fits.
    """
    needed = FILES_RESERVED + FILES_PER_ROLLOUT * max_running
    fits = (soft - FILES_RESERVED) // FILES_PER_ROLLOUT
    limit = f"hard limit is {hard}" if soft == hard else f"limit is {soft} (hard limit {hard})"
    how = f"raise it (ulimit -Hn {needed} before starting the backend, or LimitNOFILE={needed} "
    how += "for a systemd service)"
    if fits < 1:
        raise OpenFilesTooLow(
            f"the open-files {limit}, too low for the local backend: it needs at least "
            f"{FILES_RESERVED + FILES_PER_ROLLOUT} to run one rollout and {needed} to run "
            f"{max_running} at once; {how}"
        )
    if fits >= max_running:
        return OpenFiles(soft, hard, max_running)
    return OpenFiles(
        soft,
        hard,
        fits,
        f"the open-files {limit}, too low to run {max_running} rollouts at once "
        f"(ENVPOOLS_MAX_RUNNING): that needs {needed}; running at most {fits} at once. To run "
        f"{max_running}, {how}",
    )


def fit_open_files(limits: Limits, hard: int | None) -> Limits:
    """A sandbox cannot be given more open files than the backend's hard limit (setting
    more fails inside the sandbox, where the limit cannot be raised)."""
    if hard is None or limits.open_files <= hard:
        return limits
    return dataclasses.replace(limits, open_files=hard)
