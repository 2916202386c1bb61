"""Where rollout commands run: a bubblewrap sandbox, or a plain process as a fallback.

The bwrap sandbox is a fresh root: the host's /usr (and /opt) read-only, a minimal /etc
(generated passwd/group/hosts/nsswitch.conf plus the host's certificates, dynamic-linker
cache, alternatives and a few other world-readable entries; never shadow), the workspace
at the task's WORKDIR (``/app``), ``/logs/{agent,verifier,artifacts}`` bound to the trial
folder, ``/tests`` and ``/solution`` only when a phase binds them, sized tmpfs ``/tmp``
and ``/dev/shm``, no network unless asked, its own mount/pid/ipc/uts/net namespaces.

Who the task runs as, two ways:

- backend as root: bwrap runs as root *without* a user namespace (so it can bind the
  backend's private folders), keeps only CAP_SETUID/SETGID for the command, and the
  command starts with ``setpriv`` dropping to a uid/gid of its own
  (``SandboxUser``, one per rollout from an unused range), with no capabilities and
  ``no_new_privs``. The task then has no more rights on the host than an account that
  owns nothing but its trial folders: root-only files stay unreadable whatever is
  mounted, and its process limit counts its own processes only.
- backend as another user: it cannot change uid, so bwrap creates a user namespace
  mapping uid 1000 inside to the backend's own (already unprivileged) uid.

Limits (``limits.Limits``): processes (RLIMIT_NPROC, counted for the rollout's own uid
or user namespace), file size, open files, no core dumps, tmpfs sizes, and disk use of
the workspace and logs, measured while the command runs. Memory is the sandbox's
resident memory, bounded by a cgroup of its own where the backend can make one
(``cgroups.py``); never by RLIMIT_DATA or RLIMIT_AS, which kill JIT runtimes (Bun, Node)
that reserve far more than they use. Every command runs in its own process group and is
killed as a group on timeout, cancel or a broken limit (and whatever is left in its
cgroup with it).

The process driver runs commands directly on the host with the same paths rewritten to
the trial folder; it isolates nothing and exists for machines without bwrap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from envpools_cli.server.sandbox.cgroups import (
    Cgroups,
    CpuWaits,
    Load,
    SandboxCgroup,
    detect_cgroups,
)
from envpools_cli.server.sandbox.limits import (
    DEFAULT_LIMITS,
    Limits,
    fit_open_files,
    open_files_hard_limit,
)
from envpools_cli.server.sandbox.safefs import tree_usage
from envpools_cli.server.sandbox.usernet import RESOLV_CONF, UserNetwork

__all__ = [
    "DEFAULT_SANDBOX_UID",
    "BwrapDriver",
    "Mount",
    "ProcessDriver",
    "RunResult",
    "SandboxDriver",
    "SandboxSpec",
    "SandboxUser",
    "SandboxUsers",
    "backend_user",
    "make_driver",
]

log = logging.getLogger("envpools.server.sandbox")

MAX_LINE = 64 * 1024
_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_INSIDE_UID = 1000
#: 0x70000000: the first of 65536 host uids (and gids) a root backend gives its
#: sandboxes, above what useradd, systemd (dynamic users, nspawn containers) and
#: /etc/subuid allocations use; ENVPOOLS_SANDBOX_UID moves the range.
DEFAULT_SANDBOX_UID = 1879048192
SANDBOX_UID_SPAN = 65536
#: Host /etc entries a task may see (when they exist): certificates, the dynamic linker's
#: cache, alternatives symlinks, time zone, name resolution. Never shadow, sudoers, ssh.
ETC_ENTRIES = (
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "debian_version",
    "gai.conf",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "lsb-release",
    "magic",
    "magic.mime",
    "mime.types",
    "networks",
    "os-release",
    "perl",
    "pki",
    "profile",
    "protocols",
    "python3",
    "resolv.conf",
    "services",
    "ssl",
    "terminfo",
    "timezone",
)
_DISK_CHECK_SEC = 1.0
#: A timeout is the machine's doing when the command's processes waited this share of
#: the time for a CPU (their own cgroup's pressure) while getting less than a core
#: (a command that kept a core busy, or forked its own crowd, was not starved) ...
OWN_WAIT_SHARE = 0.25
STARVED_BELOW_CPUS = 1.0
#: ... or, where no cgroup of its own measures that, when the machine's tasks did.
MACHINE_WAIT_SHARE = 0.8
#: Where no cgroup bounds memory: a data-size limit per process of this many times
#: ``memory_mb`` (Bun and Node map several times what they use; 1x killed them).
FALLBACK_DATA_FACTOR = 4


@dataclass(frozen=True)
class SandboxUser:
    """The host uid/gid a rollout's sandboxed commands run as."""

    uid: int
    gid: int

    @property
    def switches(self) -> bool:
        """True when the backend (root) runs the sandbox as another user."""
        return self.uid != os.geteuid()


def backend_user() -> SandboxUser:
    return SandboxUser(os.geteuid(), os.getegid())


class SandboxUsers:
    """Host uids for sandboxes: one per running rollout, from an unused range.

    A uid of its own gives each rollout its own process count (RLIMIT_NPROC counts per
    uid) and no rights on anything another rollout wrote.
    """

    def __init__(self, base: int = DEFAULT_SANDBOX_UID, span: int = SANDBOX_UID_SPAN) -> None:
        if base <= 0 or base + span > 2**31 - 1:
            raise ValueError(f"the sandbox uid range {base}..{base + span - 1} is not usable")
        self.base = base
        self.span = span
        self._lock = threading.Lock()
        self._taken: set[int] = set()

    def take(self) -> SandboxUser:
        with self._lock:
            for _ in range(10 * self.span):
                uid = self.base + secrets.randbelow(self.span)
                if uid not in self._taken and not _has_account(uid):
                    self._taken.add(uid)
                    return SandboxUser(uid, uid)
        raise RuntimeError(
            f"no free sandbox uid in {self.base}..{self.base + self.span - 1} "
            "(all taken, or they belong to accounts)"
        )

    def release(self, user: SandboxUser) -> None:
        with self._lock:
            self._taken.discard(user.uid)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


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
    stdin: bytes | None = None
    limits: Limits = DEFAULT_LIMITS
    watch: list[Path] = field(default_factory=list)
    """Folders whose disk use counts against ``limits.storage_mb``."""
    user: SandboxUser | None = None
    """Who the command runs as, when the driver switches users (root backends)."""
    image: str | None = None
    """The task's image, for a driver that runs one (``container``)."""
    egress_socket: Path | None = None
    """The egress gateway's socket, for a driver that connects to it itself."""
    label: str | None = None
    """The rollout this command belongs to (labels what the driver creates for it)."""


@dataclass
class RunResult:
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    duration_sec: float
    storage_exceeded: bool = False
    oom_kills: int = 0
    """Processes the kernel killed for going over the sandbox's memory limit."""
    memory_peak_mb: int | None = None
    cpu_sec: float | None = None
    load: Load | None = None
    """What it got of the machine up to its end (or timeout): its waits for a CPU (its
    own cgroup's pressure, or the machine's) and the CPUs it used."""

    @property
    def memory_exceeded(self) -> bool:
        """The command itself died (a signal, or non-zero) after the OOM killer struck."""
        return self.oom_kills > 0 and self.exit_code is not None and self.exit_code != 0

    @property
    def under_load(self) -> bool:
        """The machine was saturated while it ran: it waited long for CPUs it did not get."""
        load = self.load
        if load is None or load.wait_share is None:
            return False
        if not load.own:
            return load.wait_share >= MACHINE_WAIT_SHARE
        starved = load.cpu_rate is None or load.cpu_rate < STARVED_BELOW_CPUS
        return load.wait_share >= OWN_WAIT_SHARE and starved

    def load_details(self) -> dict[str, Any]:
        load = self.load or Load(None, None, False)
        return {
            "cpu_wait_share": None if load.wait_share is None else round(load.wait_share, 3),
            "cpus_used": None if load.cpu_rate is None else round(load.cpu_rate, 3),
            "measured": "sandbox" if load.own else "machine",
        }


@dataclass
class Launch:
    """What ``Popen`` needs, and the descriptors to close once it has started."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    fds: list[int] = field(default_factory=list)
    stop: Callable[[], None] | None = None
    """Stops what the command started outside its process group (a container)."""
    cleanup: Callable[[int | None], None] | None = None
    """Runs once the command is over, with its exit code (None: it was stopped)."""
    started: Callable[[], None] | None = None
    """Runs right after the command has started (and its ``fds`` are closed): what the
    sandbox waits for before the command runs (its network)."""


def _limits_prefix(limits: Limits, *, nproc: bool, data: bool) -> list[str]:
    """Set the rlimits inside, where every child inherits them and the task cannot raise them.

    RLIMIT_NPROC is set only inside the sandbox's own user namespace, where the kernel
    counts that sandbox's processes; outside it would count every process of the uid.
    Memory is the cgroup's to bound; ``data``: there is none, so a data-size limit per
    process stands in, ``FALLBACK_DATA_FACTOR`` times ``memory_mb`` (JIT runtimes map
    several times what they use: at 1x, opencode and claude-code die).
    """
    fsize = limits.file_mb * 1024 * 1024
    data_bytes = FALLBACK_DATA_FACTOR * limits.memory_mb * 1024 * 1024
    limits = fit_open_files(limits, open_files_hard_limit())
    prlimit = next((p for p in ("/usr/bin/prlimit", "/bin/prlimit") if os.access(p, os.X_OK)), None)
    if prlimit:
        argv = [prlimit, "--core=0", f"--nofile={limits.open_files}", f"--fsize={fsize}"]
        if data:
            argv.append(f"--data={data_bytes}")
        if nproc:
            argv.append(f"--nproc={limits.processes}")
        return [*argv, "--"]
    shell = "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"
    steps = [
        "ulimit -c 0",
        f"ulimit -n {limits.open_files}",
        f"ulimit -f {fsize // 512}",  # 512-byte blocks in dash and in bash's POSIX mode
    ]
    if data:
        steps.append(f"ulimit -d {data_bytes // 1024}")
    if nproc and shell == "/bin/bash":
        steps.append(f"ulimit -u {limits.processes}")
    return [shell, "-c", " && ".join(steps) + ' && exec "$@"', "sandbox"]


class SandboxDriver:
    name = "base"
    isolated = False
    switches_user = False
    """Runs each rollout as a uid of its own (``SandboxSpec.user``)."""
    egress_in_sandbox = True
    """The egress forwarder runs inside the sandbox (bound in); False: the driver
    connects the sandbox to the gateway itself (``SandboxSpec.egress_socket``)."""
    cgroups: Cgroups | None = None
    """Where each command gets cgroups of its own (memory limit, CPU waits); None: the
    driver bounds memory another way (a container engine), or nothing can."""

    def describe(self) -> dict[str, Any]:
        """What status and capabilities report about this driver, beyond its name."""
        return {}

    @property
    def limits_memory(self) -> bool:
        """A cgroup bounds each sandbox's memory (else a data-size rlimit stands in)."""
        return self.cgroups is not None and self.cgroups.limits_memory

    def memory_limit(self) -> dict[str, Any]:
        """How a sandbox's memory is limited (for status and capabilities)."""
        found = self.cgroups.describe() if self.cgroups is not None else {}
        if not self.limits_memory:
            why = (self.cgroups.problem if self.cgroups else None) or "cgroups not looked for"
            found.update(
                method="rlimit",
                how=f"writable memory per process (RLIMIT_DATA), {FALLBACK_DATA_FACTOR} x "
                f"memory_mb: no cgroup can be made here ({why}); run the backend as root (or "
                "in a delegated cgroup) to limit resident memory",
                data_factor=FALLBACK_DATA_FACTOR,
            )
        return found

    def _cgroup(self, spec: SandboxSpec) -> SandboxCgroup | None:
        if self.cgroups is None:
            return None
        try:
            return self.cgroups.sandbox(spec.label, spec.limits.memory_mb)
        except OSError as exc:  # the hierarchy went away, or is full: run, unbounded
            log.warning("no cgroup for a sandbox (%s): memory not limited", exc)
            return None

    def launch(self, spec: SandboxSpec) -> Launch:
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
        plan = self.launch(spec)
        try:
            group = self._cgroup(spec)
        except BaseException:
            for fd in plan.fds:
                os.close(fd)
            if plan.cleanup is not None:
                plan.cleanup(None)
            raise
        argv = plan.argv if group is None else group.prefix() + plan.argv
        started = time.monotonic()
        waits = CpuWaits(group)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=plan.env,
                cwd=plan.cwd,
                start_new_session=True,
                pass_fds=plan.fds,
            )
        except BaseException:
            if group is not None:
                group.remove()
            if plan.cleanup is not None:
                plan.cleanup(None)
            raise
        finally:
            for fd in plan.fds:
                os.close(fd)
        if plan.started is not None:
            try:
                plan.started()
            except BaseException:
                _kill_group(proc)
                proc.wait()
                if group is not None:
                    group.remove()
                if plan.cleanup is not None:
                    plan.cleanup(None)
                raise
        reason: dict[str, bool] = {"timeout": False, "cancel": False, "storage": False}
        got: list[Load] = []
        finished = threading.Event()
        storage_limit = spec.limits.storage_mb * 1024 * 1024

        def watchdog() -> None:
            deadline = None if timeout is None else started + timeout
            next_check = started + _DISK_CHECK_SEC
            while not finished.is_set():
                now = time.monotonic()
                if cancel.is_set():
                    reason["cancel"] = True
                    break
                if deadline is not None and now >= deadline:
                    reason["timeout"] = True
                    got.append(waits.measure())  # before the kill: up to the deadline
                    break
                if spec.watch and now >= next_check:
                    usage = tree_usage(spec.watch)
                    # Measuring a big tree costs time: look again after 10x what it took.
                    next_check = time.monotonic() + max(
                        _DISK_CHECK_SEC, 10 * (time.monotonic() - now)
                    )
                    if usage.bytes > storage_limit or not usage.complete:
                        reason["storage"] = True
                        break
                finished.wait(0.05)
            else:
                return
            if plan.stop is not None:
                plan.stop()
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
        except BaseException:
            # Its output cannot be taken (the disk or the store is full): stop the command
            # now rather than wait below for it to end by itself.
            if plan.stop is not None:
                plan.stop()
            _kill_group(proc)
            raise
        finally:
            stdout.close()
            exit_code = proc.wait()
            finished.set()
            guard.join()
            _kill_group(proc)  # nothing of the command may outlive it
            if not got:
                got.append(waits.measure())
            used = group.use() if group is not None else None
            if group is not None:
                group.remove()  # and whatever left the process group with it
            if plan.cleanup is not None:
                halted = reason["timeout"] or reason["cancel"] or reason["storage"]
                plan.cleanup(None if halted else exit_code)
        stopped = reason["timeout"] or reason["cancel"] or reason["storage"]
        return RunResult(
            exit_code=None if stopped else exit_code,
            timed_out=reason["timeout"],
            cancelled=reason["cancel"],
            duration_sec=time.monotonic() - started,
            storage_exceeded=reason["storage"],
            oom_kills=used.oom_kills if used else 0,
            memory_peak_mb=used.memory_peak_mb if used else None,
            cpu_sec=used.cpu_sec if used else None,
            load=got[0],
        )


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):  # the command may exit without reading it all
        pipe.write(data)
        pipe.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _data_fd(text: str) -> int:
    """A pipe holding ``text``, for bwrap's ``--ro-bind-data`` (it reads it all at start)."""
    read, write = os.pipe()
    try:
        os.write(write, text.encode())
    finally:
        os.close(write)
    return read


def _path_fd(path: Path) -> int:
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def etc_files(uid: int = _INSIDE_UID, gid: int = _INSIDE_UID) -> dict[str, str]:
    """The generated part of the sandbox's /etc: the task's user is ``sandbox``."""
    return {
        "passwd": (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{uid}:{gid}:sandbox:/tmp/home:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "hostname": "sandbox\n",
        "nsswitch.conf": (
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
            "networks: files\nprotocols: files\nservices: files\n"
        ),
    }


class _Network:
    """User-mode egress for one bwrap sandbox: its pid from ``--info-fd``, slirp4netns
    attached to its network namespace, and only then ``--block-fd`` lets it go on."""

    def __init__(self, *, join_userns: bool) -> None:
        self.join_userns = join_userns
        self._info_r, info_w = os.pipe()
        block_r, self._block_w = os.pipe()
        self.child_fds = [info_w, block_r]
        self.bwrap_args = ["--info-fd", str(info_w), "--block-fd", str(block_r)]
        self._net: UserNetwork | None = None

    def attach(self) -> None:
        try:
            pid = _child_pid(self._info_r)
            self._net = UserNetwork(pid, join_userns=self.join_userns)
            os.write(self._block_w, b"1")
        finally:
            os.close(self._info_r)
            os.close(self._block_w)
            self._info_r = self._block_w = -1

    def close(self) -> None:
        for fd in (self._info_r, self._block_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._info_r = self._block_w = -1
        if self._net is not None:
            self._net.stop()
            self._net = None


def _child_pid(fd: int, timeout: float = 20.0) -> int:
    """The sandbox's pid, from the JSON bwrap writes on ``--info-fd``."""
    text = b""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        text += chunk
        try:
            return int(json.loads(text)["child-pid"])
        except (ValueError, KeyError):
            if not chunk:
                raise OSError("bwrap did not say which process to give a network to") from None


class BwrapDriver(SandboxDriver):
    name = "bwrap"
    isolated = True

    def __init__(
        self, executable: str, *, setpriv: str | None = None, sized_tmpfs: bool = True
    ) -> None:
        self.executable = executable
        self.setpriv = setpriv
        """With a backend running as root: drop to ``SandboxSpec.user`` with this."""
        self.switches_user = setpriv is not None
        self.sized_tmpfs = sized_tmpfs

    def launch(self, spec: SandboxSpec) -> Launch:
        fds: list[int] = []

        def fd_of(path: Path) -> str:
            fds.append(_path_fd(path))
            return str(fds[-1])

        drop = self.setpriv is not None and spec.user is not None and spec.user.switches
        user = spec.user if drop and spec.user else SandboxUser(_INSIDE_UID, _INSIDE_UID)
        network: _Network | None = None
        try:
            args = self._argv(spec, fd_of, fds, user, root_mode=drop)
            if spec.network:
                network = _Network(join_userns=not drop)
                fds += network.child_fds
                args[1:1] = network.bwrap_args
        except BaseException:
            for fd in fds:
                os.close(fd)
            if network is not None:
                network.close()
            raise
        # The environment goes to bwrap's own environment, not its argv: argv is
        # visible to every user of the host, and credentials travel here.
        env = {"PATH": _SANDBOX_PATH, "HOME": "/tmp/home", "LANG": "C.UTF-8", "TERM": "dumb"}
        env["USER"] = env["LOGNAME"] = "sandbox"
        env.update(spec.env)
        command = _limits_prefix(spec.limits, nproc=True, data=not self.limits_memory)
        command += spec.command
        if drop and self.setpriv:
            ids = [f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
            home = ["/bin/sh", "-c", 'mkdir -p "$HOME"; exec "$@"', "sandbox"]
            command = [self.setpriv, *ids, "--inh-caps=-all", "--", *home, *command]
        if network is None:
            return Launch(args + command, env, "/", fds)
        return Launch(
            args + command,
            env,
            "/",
            fds,
            started=network.attach,
            cleanup=lambda _code: network.close(),
        )

    def _argv(
        self,
        spec: SandboxSpec,
        fd_of: Callable[[Path], str],
        fds: list[int],
        user: SandboxUser,
        *,
        root_mode: bool,
    ) -> list[str]:
        args = [self.executable]
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        namespaces.append("--unshare-net")  # always: with a network, slirp4netns's own
        if root_mode:
            # No user namespace: bwrap (root) binds the backend's private folders, the
            # command keeps only what it needs to drop to the rollout's uid, and does.
            args += [*namespaces, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user", *namespaces, "--uid", str(user.uid), "--gid", str(user.gid)]
        args += ["--hostname", "sandbox", "--die-with-parent", "--new-session"]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "lib32", "libx32", "sbin"):
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{name}"]
        if Path("/opt").is_dir():
            args += ["--ro-bind", "/opt", "/opt"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        sized = ["--perms", "1777", "--size", str(spec.limits.tmp_bytes)]
        if not self.sized_tmpfs:
            sized = ["--perms", "1777"]
        args += [*sized, "--tmpfs", "/dev/shm", *sized, "--tmpfs", "/tmp"]
        if not root_mode:  # as root, bwrap's folder would be root's: the command makes it
            args += ["--dir", "/tmp/home"]
        args += ["--dir", "/etc"]
        generated = etc_files(user.uid, user.gid)
        if spec.network:
            generated["resolv.conf"] = RESOLV_CONF  # slirp4netns's DNS forwarder
        for name, text in generated.items():
            fds.append(_data_fd(text))
            args += ["--perms", "0644", "--ro-bind-data", str(fds[-1]), f"/etc/{name}"]
        for name in ETC_ENTRIES:
            host = Path("/etc") / name
            if name not in generated and host.exists():
                args += ["--ro-bind", str(host), str(host)]
        # Folders bwrap would make for mount points are root's 0700 ones: make them first.
        parents: list[str] = []
        for target in (spec.workdir, *(m.target for m in spec.mounts)):
            for ancestor in reversed(PurePosixPath(target).parents):
                if str(ancestor) != "/" and str(ancestor) not in parents:
                    parents.append(str(ancestor))
        for folder in parents:
            args += ["--perms", "0755", "--dir", folder]
        args += ["--bind-fd", fd_of(spec.workspace), spec.workdir]
        for mount in spec.mounts:
            option = "--bind-fd" if mount.writable else "--ro-bind-fd"
            args += [option, fd_of(mount.source), mount.target]
        # /dev and the root itself are tmpfs bwrap built: both become read-only, so
        # writes go to the workspace, /logs, or the sized /tmp and /dev/shm, nowhere else.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", spec.workdir, "--"]
        return args


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

    def launch(self, spec: SandboxSpec) -> Launch:
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
        # No RLIMIT_NPROC here: without a user namespace it would count every process
        # of the backend's user, not the command's.
        prefix = _limits_prefix(spec.limits, nproc=False, data=not self.limits_memory)
        return Launch(prefix + command, env, str(spec.workspace))


def _setpriv() -> str | None:
    return next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(p, os.X_OK)), None)


def bwrap_works(driver: BwrapDriver) -> bool:
    """bwrap can be installed yet unusable (no user namespaces): try the real thing once."""
    with tempfile.TemporaryDirectory(prefix="envpools-probe-") as scratch:
        spec = SandboxSpec(
            ["/bin/true"], Path(scratch), user=SandboxUser(DEFAULT_SANDBOX_UID, DEFAULT_SANDBOX_UID)
        )
        plan = driver.launch(spec)
        try:
            result = subprocess.run(
                plan.argv,
                env=plan.env,
                cwd=plan.cwd,
                pass_fds=plan.fds,
                capture_output=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            for fd in plan.fds:
                os.close(fd)
    return result.returncode == 0


def _supports_sizes(executable: str) -> bool:
    try:
        result = subprocess.run(
            [executable, "--help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in result.stdout and "--perms" in result.stdout


def _cgroups() -> Cgroups:
    """This machine's cgroups for sandboxes (``ENVPOOLS_SANDBOX_CGROUPS=0``: none)."""
    return detect_cgroups(enabled=os.environ.get("ENVPOOLS_SANDBOX_CGROUPS", "1") != "0")


def make_driver(choice: str = "auto") -> tuple[SandboxDriver, str | None]:
    """The driver to use and, for a fallback, the warning to show."""
    executable = shutil.which("bwrap")
    if choice in ("auto", "bwrap") and executable:
        sized = _supports_sizes(executable)
        warnings = []
        if not sized:
            warnings.append(
                "this bubblewrap is too old for --size (0.7 or newer): /tmp and /dev/shm are "
                "not sized, so memory_mb does not bound what a task writes there"
            )
        setpriv = _setpriv() if os.geteuid() == 0 else None
        if os.geteuid() == 0 and setpriv is None:
            warnings.append(
                "setpriv (util-linux) is missing, so sandboxed tasks cannot be given a uid of "
                "their own and map to root on the host side"
            )
        driver = BwrapDriver(executable, setpriv=setpriv, sized_tmpfs=sized)
        if bwrap_works(driver):
            driver.cgroups = _cgroups()
            return driver, "; ".join(warnings) or None
    if choice == "bwrap":
        raise RuntimeError("bubblewrap (bwrap) is not installed or cannot create namespaces")
    reason = (
        "bubblewrap (bwrap) is not installed"
        if not executable
        else ("bubblewrap cannot create namespaces here")
    )
    if choice == "process":
        reason = "the plain-process sandbox driver was chosen"
    process = ProcessDriver()
    process.cgroups = _cgroups()
    return process, (
        f"{reason}: rollouts run as plain processes on this machine, without isolation"
    )
