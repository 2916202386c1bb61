"""A cgroup per sandboxed command: its resident memory bounded, its CPU use and waits measured.

Agent CLIs on JIT runtimes (Bun, Node) reserve far more address space than they use:
opencode's Bun died with ``MemoryExhaustion`` under a 2 GB data-size rlimit while it
used ~600 MB. What matters is resident memory, and only a cgroup bounds that. Where the
backend can make cgroups (root, as in CI, or a delegated subtree), each sandboxed command
runs in one of its own under the backend's cgroup (``envpools/``):

- **memory**: the cgroup v2 memory controller (``memory.max``, swap 0), else cgroup v1's
  (``memory.limit_in_bytes`` and ``memsw``): the kernel's OOM killer kills within the
  sandbox only, and counts its kills (``oom_kill``), which the runner reports as
  ``memory_limit``;
- **CPU waits**: a cgroup v2 group (the unified hierarchy, with or without controllers)
  gives the command's CPU time (``cpu.stat``) and the time its processes were ready to run
  but waited for a CPU (``cpu.pressure``): a timeout after long waits is the machine's
  doing (``timeout_under_load``), not the agent's.

Where none can be made (a backend not running as root), a data-size rlimit of several
times ``memory_mb`` per process stands in (``drivers.py``), status and capabilities say
so, and CPU waits are read machine-wide (``/proc/pressure``).
The command joins its cgroups itself, first thing (a shell prefix writes its pid to
``cgroup.procs`` and execs): no ``preexec_fn`` in a threaded backend.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Cgroups",
    "CpuWaits",
    "Load",
    "SandboxCgroup",
    "SandboxUse",
    "detect_cgroups",
    "machine_cpu_wait_usec",
]

PARENT = "envpools"
#: Joins the cgroups named before ``--`` (their ``cgroup.procs``), then runs the rest.
JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class Hierarchy:
    """Where this backend makes its sandboxes' cgroups, in one cgroup hierarchy."""

    parent: Path
    version: int
    memory: bool
    """Children here can have their memory limited."""

    def describe(self) -> str:
        return f"cgroup v{self.version} ({self.parent})"


def _mounts(mountinfo: str) -> Iterator[tuple[str, str, str, set[str]]]:
    """``(fstype, mount point, root within the fs, super options)`` of cgroup mounts."""
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        yield tail[0], fields[4].replace("\\040", " "), fields[3], set(tail[2].split(","))


def _own_paths(text: str) -> dict[str, str]:
    """This process's cgroup per controller (``""`` for v2) from ``/proc/self/cgroup``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                found[name] = parts[2]
    return found


def _inside(mount: str, root: str, path: str) -> Path:
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(mount) / relative.lstrip("/")


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:  # one write(2), as cgroup files want it
        handle.write(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _probe(hierarchy: Hierarchy) -> str | None:
    """Make and remove a child with a memory limit: None when that works, else why not."""
    probe = hierarchy.parent / f"probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot make a cgroup in {hierarchy.parent}: {exc.strerror or exc}"
    try:
        if hierarchy.memory:
            name = "memory.max" if hierarchy.version == 2 else "memory.limit_in_bytes"
            _write(probe / name, str(64 * 1024 * 1024))
    except OSError as exc:
        return f"cannot limit memory in {hierarchy.parent}: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return None


def _v2(mount: str, root: str, own: str) -> tuple[Hierarchy | None, str | None]:
    """A v2 parent for sandboxes, with memory when the controller can be handed down."""
    base = _inside(mount, root, own)
    parent = base / PARENT
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        return None, f"cgroup v2: cannot make {parent}: {exc.strerror or exc}"
    controllers = (_read(base / "cgroup.controllers") or "").split()
    memory = False
    if "memory" in controllers:
        try:
            if "memory" not in (_read(base / "cgroup.subtree_control") or "").split():
                # Refused (EBUSY) when the backend's own cgroup holds processes and is not
                # the root: the "no internal processes" rule. Then no memory limit here.
                _write(base / "cgroup.subtree_control", "+memory")
            _write(parent / "cgroup.subtree_control", "+memory")
            memory = True
        except OSError:
            memory = False
    hierarchy = Hierarchy(parent, 2, memory)
    problem = _probe(hierarchy)
    if problem:
        return None, problem
    return hierarchy, None


def _v1_memory(mount: str, root: str, own: str) -> tuple[Hierarchy | None, str | None]:
    parent = _inside(mount, root, own) / PARENT
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        return None, f"cgroup v1 memory: cannot make {parent}: {exc.strerror or exc}"
    hierarchy = Hierarchy(parent, 1, True)
    problem = _probe(hierarchy)
    return (None, problem) if problem else (hierarchy, None)


@dataclass(frozen=True)
class SandboxUse:
    """What one sandboxed command used, as its cgroups counted it."""

    oom_kills: int = 0
    """Processes the kernel killed for going over the memory limit."""
    memory_peak_mb: int | None = None
    cpu_sec: float | None = None
    cpu_wait_sec: float | None = None
    """Time at least one of its processes was ready to run but waited for a CPU."""


def _stat(text: str | None, key: str) -> int | None:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def _pressure_total(text: str | None) -> int | None:
    """``total=`` of the ``some`` line of a pressure file (microseconds)."""
    for line in (text or "").splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key == "total" and value.isdigit():
                    return int(value)
    return None


def machine_cpu_wait_usec() -> int | None:
    """Time, machine-wide, some task waited for a CPU (PSI), or None without PSI."""
    return _pressure_total(_read(Path("/proc/pressure/cpu")))


class SandboxCgroup:
    """The cgroups of one sandboxed command: made before it starts, removed after."""

    def __init__(self, dirs: list[tuple[Hierarchy, Path]], memory_bytes: int | None) -> None:
        self.dirs = dirs
        self.memory_bytes = memory_bytes
        self._cpu_wait_start: int | None = None

    @property
    def memory_dir(self) -> tuple[Hierarchy, Path] | None:
        return next(((h, d) for h, d in self.dirs if h.memory), None)

    @property
    def stats_dir(self) -> Path | None:
        return next((d for h, d in self.dirs if h.version == 2), None)

    def prefix(self) -> list[str]:
        """What runs the command inside these cgroups (it joins them, then execs)."""
        procs = [str(d / "cgroup.procs") for _, d in self.dirs]
        return ["/bin/sh", "-c", JOIN, "sandbox-cgroup", *procs, "--"]

    def cpu_wait_usec(self) -> int | None:
        stats = self.stats_dir
        return _pressure_total(_read(stats / "cpu.pressure")) if stats else None

    def use(self) -> SandboxUse:
        oom, peak, cpu, wait = 0, None, None, None
        if (found := self.memory_dir) is not None:
            hierarchy, folder = found
            if hierarchy.version == 2:
                oom = _stat(_read(folder / "memory.events"), "oom_kill") or 0
                text = _read(folder / "memory.peak")
                peak = int(text) if text and text.strip().isdigit() else None
            else:
                oom = _stat(_read(folder / "memory.oom_control"), "oom_kill") or 0
                text = _read(folder / "memory.max_usage_in_bytes")
                peak = int(text) if text and text.strip().isdigit() else None
        if (stats := self.stats_dir) is not None:
            usage = _stat(_read(stats / "cpu.stat"), "usage_usec")
            cpu = usage / 1e6 if usage is not None else None
            total = self.cpu_wait_usec()
            wait = total / 1e6 if total is not None else None
        return SandboxUse(
            oom_kills=oom,
            memory_peak_mb=peak // (1024 * 1024) if peak is not None else None,
            cpu_sec=cpu,
            cpu_wait_sec=wait,
        )

    def kill(self) -> None:
        """Kill whatever still runs in them (a process that left the process group)."""
        for hierarchy, folder in self.dirs:
            kill_file = folder / "cgroup.kill"
            if hierarchy.version == 2 and kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
                continue
            for _ in range(20):
                listed = (_read(folder / "cgroup.procs") or "").split()
                pids = [int(p) for p in listed if p.isdigit()]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)

    def remove(self) -> None:
        self.kill()
        for _, folder in self.dirs:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.02)  # the last killed processes are still exiting


@dataclass
class Cgroups:
    """Where (and whether) this backend can put each sandbox in cgroups of its own."""

    memory: Hierarchy | None = None
    stats: Hierarchy | None = None
    """A cgroup v2 hierarchy for CPU time and waits (the same as ``memory`` on v2)."""
    problem: str | None = None
    """Why memory cannot be limited here, when it cannot."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def limits_memory(self) -> bool:
        return self.memory is not None

    def describe(self) -> dict[str, Any]:
        if self.memory is not None:
            how = f"resident memory, per sandbox: a {self.memory.describe()} with " + (
                "memory.max" if self.memory.version == 2 else "memory.limit_in_bytes"
            )
            found: dict[str, Any] = {"method": "cgroup", "how": how}
        else:
            found = {"method": "none", "how": f"no cgroup: {self.problem or 'none found'}"}
        found["cpu_waits"] = (
            f"per sandbox ({self.stats.describe()})" if self.stats else "machine-wide (PSI)"
        )
        return found

    def sandbox(self, label: str | None, memory_mb: int) -> SandboxCgroup | None:
        """Cgroups for one command (None when none can be made here)."""
        hierarchies = [h for h in (self.memory, self.stats) if h is not None]
        hierarchies = list(dict.fromkeys(hierarchies))
        if not hierarchies:
            return None
        name = f"{label or 'sandbox'}-{secrets.token_hex(4)}"
        made: list[tuple[Hierarchy, Path]] = []
        memory_bytes = memory_mb * 1024 * 1024
        try:
            for hierarchy in hierarchies:
                folder = hierarchy.parent / name
                folder.mkdir()
                made.append((hierarchy, folder))
                if hierarchy.memory:
                    _limit_memory(hierarchy, folder, memory_bytes)
        except OSError:
            SandboxCgroup(made, None).remove()
            raise
        return SandboxCgroup(made, memory_bytes if self.memory is not None else None)

    def tidy(self, older_than: float = 300.0) -> None:
        """Remove what earlier backends left: empty sandbox cgroups (busy ones stay).

        Only old ones: another backend's newest may not have its command in it yet."""
        now = time.time()
        for hierarchy in dict.fromkeys(h for h in (self.memory, self.stats) if h is not None):
            with contextlib.suppress(OSError):
                for child in hierarchy.parent.iterdir():
                    with contextlib.suppress(OSError):
                        if child.is_dir() and now - child.stat().st_mtime > older_than:
                            child.rmdir()


def _limit_memory(hierarchy: Hierarchy, folder: Path, limit: int) -> None:
    if hierarchy.version == 2:
        _write(folder / "memory.max", str(limit))
        with contextlib.suppress(OSError):  # no swap configured: no such file
            _write(folder / "memory.swap.max", "0")
        return
    _write(folder / "memory.limit_in_bytes", str(limit))
    with contextlib.suppress(OSError):  # only with swap accounting
        _write(folder / "memory.memsw.limit_in_bytes", str(limit))


def detect_cgroups(
    mountinfo: str | None = None, own: str | None = None, *, enabled: bool = True
) -> Cgroups:
    """What this backend can do with cgroups here (read once, at start)."""
    if not enabled:
        return Cgroups(problem="turned off (ENVPOOLS_SANDBOX_CGROUPS=0)")
    if mountinfo is None:
        mountinfo = _read(Path("/proc/self/mountinfo")) or ""
    if own is None:
        own = _read(Path("/proc/self/cgroup")) or ""
    paths = _own_paths(own)
    mounts = list(_mounts(mountinfo))
    problems: list[str] = []
    v2: Hierarchy | None = None
    v1: Hierarchy | None = None
    for fstype, point, root, options in mounts:
        if fstype == "cgroup2" and "" in paths and v2 is None:
            v2, problem = _v2(point, root, paths[""])
            if problem:
                problems.append(problem)
        elif fstype == "cgroup" and "memory" in options and "memory" in paths and v1 is None:
            v1, problem = _v1_memory(point, root, paths["memory"])
            if problem:
                problems.append(problem)
    memory = v2 if v2 is not None and v2.memory else v1
    if memory is None and not problems:
        problems.append("no cgroup memory controller is mounted")
    cgroups = Cgroups(memory=memory, stats=v2, problem="; ".join(problems) or None)
    cgroups.tidy()
    return cgroups


@dataclass(frozen=True)
class Load:
    """What a command got of the machine while it ran."""

    wait_share: float | None
    """Share of the time it waited for a CPU (0..1): its own cgroup's, else the machine's."""
    cpu_rate: float | None
    """CPUs it used on average (its own cgroup's time over the wall time), when known."""
    own: bool


@dataclass
class CpuWaits:
    """How long a command waited for a CPU while it ran: its own cgroup's pressure where
    it has one, else the machine's (PSI)."""

    group: SandboxCgroup | None
    started: float = field(default_factory=time.monotonic)
    own: bool = False
    _start: int | None = None

    def __post_init__(self) -> None:
        first = self.group.cpu_wait_usec() if self.group is not None else None
        self.own = first is not None
        self._start = first if first is not None else machine_cpu_wait_usec()

    def measure(self) -> Load:
        """What the command got since the start."""
        group = self.group if self.own else None
        now = group.cpu_wait_usec() if group is not None else machine_cpu_wait_usec()
        elapsed = time.monotonic() - self.started
        share = rate = None
        if now is not None and self._start is not None and elapsed > 0:
            share = max(0.0, min(1.0, (now - self._start) / 1e6 / elapsed))
        if group is not None and elapsed > 0:
            used = group.use().cpu_sec
            rate = None if used is None else used / elapsed
        return Load(share, rate, self.own)
