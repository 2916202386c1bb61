"""Where rollout commands run: a bubblewrap sandbox, or a plain process as a fallback.

The bwrap sandbox is a fresh root: the host's /usr and /etc read-only, the workspace at
the task's WORKDIR (``/app``), ``/logs/{agent,verifier,artifacts}`` bound to the trial
folder, ``/tests`` and ``/solution`` only when a phase binds them, no network unless
asked, its own pid/ipc/uts/user namespaces, rlimits, and an unprivileged uid. Every
command runs in its own process group and is killed as a group on timeout or cancel.

The process driver runs commands directly on the host with the same paths rewritten
to the trial folder; it isolates nothing and exists for machines without bwrap.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "BwrapDriver",
    "Mount",
    "ProcessDriver",
    "RunResult",
    "SandboxDriver",
    "SandboxSpec",
    "make_driver",
]

MAX_LINE = 64 * 1024
_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_SANDBOX_UID = 1000


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass
class SandboxSpec:
    command: list[str]
    workspace: Path
    workdir: str = "/app"
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    network: bool = False
    memory_mb: int | None = None
    stdin: bytes | None = None
    max_file_mb: int = 4096
    max_open_files: int = 4096


@dataclass
class RunResult:
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    duration_sec: float


def _limits_prefix(spec: SandboxSpec) -> list[str]:
    """``sh -c 'ulimit ...; exec "$@"'``: rlimits applied inside, inherited by every child."""
    limits = [
        "ulimit -c 0",
        f"ulimit -n {spec.max_open_files}",
        f"ulimit -f {spec.max_file_mb * 1024 * 2}",  # 512-byte blocks in dash
    ]
    if spec.memory_mb:
        # The data limit (writable private memory), not the address-space one: runtimes
        # such as Node reserve gigabytes of address space they never touch.
        limits.append(f"ulimit -d {spec.memory_mb * 1024}")
    return ["/bin/sh", "-c", "; ".join(limits) + '; exec "$@"', "sandbox"]


class SandboxDriver:
    name = "base"
    isolated = False

    def argv(self, spec: SandboxSpec) -> tuple[list[str], dict[str, str], str]:
        raise NotImplementedError

    def run(
        self,
        spec: SandboxSpec,
        *,
        timeout: float | None,
        cancel: threading.Event,
        on_line: Callable[[str], None],
    ) -> RunResult:
        """Run to completion, feeding each output line (stdout and stderr) to ``on_line``."""
        argv, env, cwd = self.argv(spec)
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        reason: dict[str, bool] = {"timeout": False, "cancel": False}
        finished = threading.Event()

        def watchdog() -> None:
            deadline = None if timeout is None else started + timeout
            while not finished.is_set():
                if cancel.is_set():
                    reason["cancel"] = True
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason["timeout"] = True
                    break
                finished.wait(0.05)
            else:
                return
            _kill_group(proc)

        guard = threading.Thread(target=watchdog, name="sandbox-watchdog", daemon=True)
        guard.start()
        if spec.stdin is not None and proc.stdin is not None:
            threading.Thread(target=_feed, args=(proc.stdin, spec.stdin), daemon=True).start()
        assert proc.stdout is not None
        stdout = proc.stdout
        try:
            for raw in iter(lambda: stdout.readline(MAX_LINE), b""):
                on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        finally:
            stdout.close()
            exit_code = proc.wait()
            finished.set()
            guard.join()
            _kill_group(proc)  # nothing of the command may outlive it
        return RunResult(
            exit_code=None if reason["timeout"] or reason["cancel"] else exit_code,
            timed_out=reason["timeout"],
            cancelled=reason["cancel"],
            duration_sec=time.monotonic() - started,
        )


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):  # the command may exit without reading it all
        pipe.write(data)
        pipe.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class BwrapDriver(SandboxDriver):
    name = "bwrap"
    isolated = True

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def argv(self, spec: SandboxSpec) -> tuple[list[str], dict[str, str], str]:
        uid = str(_SANDBOX_UID)
        args = [self.executable, "--unshare-all", "--unshare-user", "--uid", uid, "--gid", uid]
        args += ["--die-with-parent", "--new-session"]
        args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/tmp/home"]
        if spec.network:
            args += ["--share-net"]
        for name in ("bin", "lib", "lib64", "lib32", "libx32", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{name}"]
        if Path("/opt").is_dir():
            args += ["--ro-bind", "/opt", "/opt"]
        args += ["--bind", str(spec.workspace), spec.workdir]
        for mount in spec.mounts:
            args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        # The root itself (a tmpfs bwrap built) becomes read-only: writes go to the
        # workspace, /logs, or the private /tmp, nowhere else.
        args += ["--remount-ro", "/", "--chdir", spec.workdir, "--"]
        # The environment goes to bwrap's own environment, not its argv: argv is
        # visible to every user of the host, and credentials travel here.
        env = {"PATH": _SANDBOX_PATH, "HOME": "/tmp/home", "LANG": "C.UTF-8", "TERM": "dumb"}
        env.update(spec.env)
        return args + _limits_prefix(spec) + spec.command, env, "/"


class ProcessDriver(SandboxDriver):
    """No isolation: container paths in the command and its scripts are rewritten."""

    name = "process"
    isolated = False

    def _mapping(self, spec: SandboxSpec) -> list[tuple[str, str]]:
        pairs = [(m.target, str(m.source)) for m in spec.mounts]
        pairs.append((spec.workdir, str(spec.workspace)))
        return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)

    def rewrite(self, text: str, spec: SandboxSpec) -> str:
        for target, source in self._mapping(spec):
            text = re.sub(rf"(?<![\w/]){re.escape(target)}(?=/|\b|$)", source, text)
        return text

    def argv(self, spec: SandboxSpec) -> tuple[list[str], dict[str, str], str]:
        command = []
        scratch = spec.workspace.parent / "rewritten"
        for arg in spec.command:
            host_arg = self.rewrite(arg, spec)
            path = Path(host_arg)
            if path.is_file() and path.suffix in (".sh", ".bash", ".py") and arg != host_arg:
                scratch.mkdir(exist_ok=True)
                copy = scratch / f"{abs(hash(host_arg))}-{path.name}"
                copy.write_text(self.rewrite(path.read_text(errors="replace"), spec))
                copy.chmod(0o755)
                host_arg = str(copy)
            command.append(host_arg)
        home = spec.workspace.parent / "home"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", _SANDBOX_PATH),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
        }
        env.update({key: self.rewrite(value, spec) for key, value in spec.env.items()})
        return _limits_prefix(spec) + command, env, str(spec.workspace)


def bwrap_works(executable: str) -> bool:
    """bwrap can be installed yet unusable (no user namespaces): try it once."""
    try:
        result = subprocess.run(
            [
                executable,
                "--unshare-all",
                "--unshare-user",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/bin",
                "/bin",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--",
                "/bin/true",
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def make_driver(choice: str = "auto") -> tuple[SandboxDriver, str | None]:
    """The driver to use and, for the fallback, the warning to show."""
    executable = shutil.which("bwrap")
    if choice in ("auto", "bwrap") and executable and bwrap_works(executable):
        return BwrapDriver(executable), None
    if choice == "bwrap":
        raise RuntimeError("bubblewrap (bwrap) is not installed or cannot create namespaces")
    reason = (
        "bubblewrap (bwrap) is not installed"
        if not executable
        else ("bubblewrap cannot create namespaces here")
    )
    if choice == "process":
        reason = "the plain-process sandbox driver was chosen"
    return ProcessDriver(), (
        f"{reason}: rollouts run as plain processes on this machine, without isolation"
    )
