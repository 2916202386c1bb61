"""Which container engine this machine can run (podman or Docker), found by running one.

An engine can be installed yet unusable: no daemon (Docker), a default OCI runtime that
cannot handle the host's cgroups (crun on a hybrid cgroup-v1 host), a systemd cgroup
manager without systemd, default ulimits above this process's hard limits. So the probe
settles each of these by looking (``podman info``, ``/run/systemd/system``, the hard
limits), then runs a real container with the options a rollout uses (no network, all
capabilities dropped, read-only root, memory and process limits, explicit ulimits) and
keeps the first configuration that works; when none does, it says why for each.

The probe image is one file: a 129-byte static ELF that exits 0, imported with the
engine's own ``import`` (no registry, no download), tagged ``localhost/envpools/probe``.

Every choice can be forced: ``ENVPOOLS_CONTAINER_ENGINE`` (``podman``, ``docker`` or a
path), ``ENVPOOLS_OCI_RUNTIME`` (``runc``, ``crun``), ``ENVPOOLS_CGROUP_MANAGER``
(``cgroupfs``, ``systemd``), ``ENVPOOLS_STORAGE_DRIVER`` (``overlay``, ``vfs``; podman).
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import resource
import shutil
import struct
import subprocess
import tarfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "BUILDER_ADVISORIES",
    "PROBE_IMAGE",
    "ContainerRuntime",
    "RuntimeProbe",
    "builder_advisories",
    "exit_zero_elf",
    "hard_limit",
    "probe_runtime",
]

PROBE_IMAGE = "localhost/envpools/probe:1"
MANAGED_LABEL = "envpools.managed"
_TIMEOUT = 60.0
_ENGINES = ("podman", "docker")
#: Machine code of ``exit(0)`` for the architectures a probe image can be made for.
_EXIT_ZERO = {
    "x86_64": (0x3E, bytes.fromhex("31ffb83c0000000f05")),  # xor edi,edi; mov eax,60; syscall
    "aarch64": (0xB7, bytes.fromhex("000080d2a80b80d2010000d4")),  # mov x0,0; mov x8,93; svc 0
}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
#: Builder escapes by engine: (engine, first fixed version, what it is).
BUILDER_ADVISORIES = (
    (
        "podman",
        (4, 9, 4),
        "CVE-2024-1753: before podman 4.9.4 (buildah 1.35.1) a RUN --mount of a symbolic "
        "link reads and writes the host's files during a build",
    ),
    (
        "docker",
        (25, 0, 2),
        "CVE-2024-23651/23652/23653: before Docker 25.0.2 (BuildKit 0.12.5) RUN --mount and "
        "the builder's cache reach the host's files during a build",
    ),
)


def _version(text: str) -> tuple[int, ...] | None:
    numbers = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if numbers is None:
        return None
    return tuple(int(n or 0) for n in numbers.groups())


def builder_advisories(engine: str, version: str) -> list[str]:
    """Known builder escapes of this engine version (an unreadable version counts as old)."""
    found = _version(version)
    return [
        text
        for name, fixed, text in BUILDER_ADVISORIES
        if name == engine and (found is None or found < fixed)
    ]


def exit_zero_elf(machine: str | None = None) -> bytes | None:
    """A static ELF executable that exits 0 at once, for this machine (None if unknown)."""
    arch = machine or platform.machine()
    found = _EXIT_ZERO.get(_ALIASES.get(arch, arch))
    if found is None:
        return None
    e_machine, code = found
    base, header_size = 0x400000, 64 + 56
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SYSV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, e_machine, 1, base + header_size, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    size = header_size + len(code)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + program + code


def hard_limit(name: str) -> int | None:
    """This process's hard limit (``nofile``, ``nproc``, ...); None when unlimited."""
    which = getattr(resource, f"RLIMIT_{name.upper()}", None)
    if which is None:
        return None
    hard = resource.getrlimit(which)[1]
    return None if hard == resource.RLIM_INFINITY else hard


@dataclass(frozen=True)
class ContainerRuntime:
    """A working engine and the global options it needs on this machine."""

    engine: str
    """``podman`` or ``docker``."""
    executable: str
    version: str
    oci_runtime: str | None = None
    cgroup_manager: str | None = None
    storage_driver: str | None = None
    """Passed only when forced: podman refuses a store made with another driver."""
    storage_in_use: str | None = None
    cgroup_version: str | None = None
    init: bool = False
    """Whether ``--init`` works: a tiny init as PID 1 reaps what the task orphans."""
    notes: tuple[str, ...] = ()

    @property
    def global_args(self) -> list[str]:
        args: list[str] = []
        if self.engine == "podman":
            if self.oci_runtime:
                args += ["--runtime", self.oci_runtime]
            if self.cgroup_manager:
                args += ["--cgroup-manager", self.cgroup_manager]
            if self.storage_driver:
                args += ["--storage-driver", self.storage_driver]
        return args

    def command(self, *args: str) -> list[str]:
        return [self.executable, *self.global_args, *args]

    def ulimits(self, nofile: int, nproc: int) -> list[str]:
        """``--ulimit`` options within this process's hard limits (more would fail)."""
        args = []
        for name, wanted in (("nofile", nofile), ("nproc", nproc), ("core", 0)):
            ceiling = hard_limit(name)
            value = wanted if ceiling is None else min(wanted, ceiling)
            args += ["--ulimit", f"{name}={value}:{value}"]
        return args

    def describe(self) -> dict[str, Any]:
        found = {
            "engine": self.engine,
            "executable": self.executable,
            "version": self.version,
            "oci_runtime": self.oci_runtime,
            "cgroup_manager": self.cgroup_manager,
            "storage_driver": self.storage_driver or self.storage_in_use,
            "cgroup_version": self.cgroup_version,
            "init": self.init,
        }
        return {k: v for k, v in found.items() if v is not None}


@dataclass
class RuntimeProbe:
    """What the probe found: a runtime, or for each engine tried, why it does not work."""

    runtime: ContainerRuntime | None
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or "no container engine (podman or docker) is installed"


def _run(
    argv: list[str], *, data: bytes | None = None, timeout: float = _TIMEOUT
) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"{os.path.basename(argv[0])} did not answer within {timeout:g}s"
    except OSError as exc:
        return 126, str(exc)
    text = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
    return done.returncode, text


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:300]


def _probe_tar() -> bytes | None:
    binary = exit_zero_elf()
    if binary is None:
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("true")
        info.size, info.mode = len(binary), 0o755
        archive.addfile(info, io.BytesIO(binary))
    return buffer.getvalue()


def _ensure_probe_image(runtime: ContainerRuntime) -> str | None:
    """Import the probe image if it is missing; the reason when that fails."""
    code, _ = _run(runtime.command("image", "inspect", "--format", "{{.Id}}", PROBE_IMAGE))
    if code == 0:
        return None
    archive = _probe_tar()
    if archive is None:
        return f"no probe image can be made for this architecture ({platform.machine()})"
    change = ["--change", f"LABEL {MANAGED_LABEL}=probe"]
    code, text = _run(runtime.command("import", *change, "-", PROBE_IMAGE), data=archive)
    return None if code == 0 else f"importing a probe image failed: {_last_line(text)}"


def _trial(runtime: ContainerRuntime) -> str | None:
    """Run the probe container as a rollout would; the reason when it fails."""
    if problem := _ensure_probe_image(runtime):
        return problem
    init = ["--init"] if runtime.init else []
    argv = runtime.command(
        "run", "--rm", *init, "--network", "none", "--cap-drop", "all", "--read-only",
        "--security-opt", "no-new-privileges", "--memory", "64m", "--pids-limit", "16",
        *runtime.ulimits(64, 64), "--label", f"{MANAGED_LABEL}=probe",
        PROBE_IMAGE, "/true",
    )  # fmt: skip
    code, text = _run(argv)
    return None if code == 0 else _last_line(text)


def _podman_info(executable: str, global_args: list[str]) -> tuple[dict[str, Any] | None, str]:
    code, text = _run([executable, *global_args, "info", "--format", "json"])
    if code != 0:
        return None, _last_line(text)
    try:
        start = text.index("{")
        info = json.loads(text[start : text.rindex("}") + 1])
    except ValueError:
        return None, "podman info printed no JSON"
    return (info if isinstance(info, dict) else None), ""


def _has_init() -> bool:
    """podman's ``--init`` needs catatonit (Debian: the catatonit package)."""
    return any(
        os.access(path, os.X_OK)
        for path in (
            "/usr/libexec/podman/catatonit",
            "/usr/bin/catatonit",
            "/usr/local/bin/catatonit",
        )
    )


def _hybrid_cgroups() -> bool:
    """cgroup v1 with a v2 hierarchy mounted beside it, where crun cannot place containers."""
    return os.path.isdir("/sys/fs/cgroup/unified") and not os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers"
    )


def _podman(executable: str, env: Mapping[str, str]) -> tuple[ContainerRuntime | None, str]:
    forced_oci = env.get("ENVPOOLS_OCI_RUNTIME") or None
    forced_cgroups = env.get("ENVPOOLS_CGROUP_MANAGER") or None
    storage = env.get("ENVPOOLS_STORAGE_DRIVER") or None
    early = ["--storage-driver", storage] if storage else []
    if forced_cgroups:
        early += ["--cgroup-manager", forced_cgroups]
    info, problem = _podman_info(executable, early)
    if info is None:
        return None, f"podman: {problem}"
    host = info.get("host") or {}
    version = str((info.get("version") or {}).get("Version") or "")
    default_oci = str((host.get("ociRuntime") or {}).get("name") or "") or None
    cgroup_version = str(host.get("cgroupVersion") or "") or None
    notes: list[str] = []
    cgroups = forced_cgroups
    # systemd as a cgroup manager needs systemd as this machine's init.
    wants_systemd = host.get("cgroupManager") == "systemd"
    if cgroups is None and wants_systemd and not os.path.isdir("/run/systemd/system"):
        cgroups = "cgroupfs"
        notes.append("cgroupfs cgroup manager: systemd is not running")
    candidates: list[str | None] = [forced_oci] if forced_oci else [None]
    if not forced_oci:
        if default_oci == "crun" and _hybrid_cgroups() and shutil.which("runc"):
            candidates = ["runc", None]  # crun fails on hybrid cgroups: try runc first
        else:
            candidates += [name for name in ("runc", "crun") if name != default_oci]
    failures = []
    for oci in candidates:
        if oci is not None and not forced_oci and not shutil.which(oci):
            continue
        runtime = ContainerRuntime(
            engine="podman",
            executable=executable,
            version=version,
            oci_runtime=oci,
            cgroup_manager=cgroups,
            storage_driver=storage,
            cgroup_version=cgroup_version,
            init=_has_init(),
            notes=tuple(notes),
        )
        failure = _trial(runtime)
        if failure is None:
            # Spell out what podman would pick by itself: every later command runs with
            # the configuration that was tried, and status can report it.
            store = info.get("store") or {}
            return replace(
                runtime,
                oci_runtime=oci or default_oci,
                cgroup_manager=cgroups or str(host.get("cgroupManager") or "") or None,
                storage_in_use=storage or str(store.get("graphDriverName") or "") or None,
            ), ""
        failures.append(f"{oci or default_oci or 'default runtime'}: {failure}")
    return None, "podman cannot run a container here (" + "; ".join(failures) + ")"


def _docker(executable: str) -> tuple[ContainerRuntime | None, str]:
    code, text = _run([executable, "version", "--format", "{{.Server.Version}}"], timeout=20)
    if code != 0:
        return None, f"docker: {_last_line(text)}"
    runtime = ContainerRuntime(
        engine="docker", executable=executable, version=text.strip(), init=True
    )  # docker ships docker-init
    if problem := _trial(runtime):
        return None, f"docker cannot run a container here ({problem})"
    return runtime, ""


_cache: dict[tuple[str, ...], RuntimeProbe] = {}
_cache_lock = threading.Lock()


def probe_runtime(env: Mapping[str, str] | None = None, *, fresh: bool = False) -> RuntimeProbe:
    """The first engine that runs a container here (podman, then Docker), once per process."""
    env = os.environ if env is None else env
    names = (
        "ENVPOOLS_CONTAINER_ENGINE",
        "ENVPOOLS_OCI_RUNTIME",
        "ENVPOOLS_CGROUP_MANAGER",
        "ENVPOOLS_STORAGE_DRIVER",
        "PATH",
    )
    key = tuple(env.get(name, "") for name in names)
    with _cache_lock:
        if not fresh and key in _cache:
            return _cache[key]
        probe = _probe(env)
        _cache[key] = probe
        return probe


def _probe(env: Mapping[str, str]) -> RuntimeProbe:
    forced = env.get("ENVPOOLS_CONTAINER_ENGINE") or None
    wanted = [forced] if forced else list(_ENGINES)
    reasons = []
    for name in wanted:
        executable = shutil.which(name, path=env.get("PATH"))
        if executable is None:
            reasons.append(f"{name}: not installed")
            continue
        engine = os.path.basename(name)
        if "docker" in engine:
            runtime, problem = _docker(executable)
        elif "podman" in engine:
            runtime, problem = _podman(executable, env)
        else:
            reasons.append(f"{name}: not podman or docker (ENVPOOLS_CONTAINER_ENGINE)")
            continue
        if runtime is not None:
            return RuntimeProbe(runtime, reasons)
        reasons.append(problem)
    return RuntimeProbe(None, reasons)
