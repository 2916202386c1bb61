"""Image builds without host privileges: podman's builder in a user namespace of its own.

A Dockerfile's ``RUN`` lines are the task's code, and the builder runs them. Given to a
root ``podman build``, they run as root, and a builder escape (CVE-2024-1753 in podman
< 4.9.4) hands them the host. So where the backend is root, a build that runs anything
runs here instead:

- in a **user namespace** whose root is host uid ``BUILD_UID`` (65536 uids from there,
  owned by no account): what the build reaches of the host, it reaches as a stranger to
  every file, so root-only files (the data folder, the credential key, /etc/shadow) stay
  out of reach even if the builder hands it the host's ``/``;
- with a **store of its own** (``ENVPOOLS_BUILD_STORE``, owned by that uid): the build
  cannot touch the engine's images. The base images are copied in (once), the built
  image is copied out to the engine's store, where rollouts run it;
- in a **mount namespace** where the host's /tmp, /var/tmp, /dev/shm, /home and /root are
  empty, so it sees the system folders, the store and the copied context, and nothing of
  the backend's or its users' files;
- in a **network namespace** of its own with user-mode egress (slirp4netns, see
  ``usernet``): package mirrors are reachable, the host's loopback is not.

The namespaces are made by a small launcher (``LAUNCHER``, run as its own process so that
nothing forks the backend's threads) that execs podman inside them.

podman's own ``--userns-uid-map`` for builds is not used: with it podman 4.3 commits the
build's files with the host uids of the mapping (containers/storage#914).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from envpools_cli.server.sandbox.drivers import DEFAULT_SANDBOX_UID, SANDBOX_UID_SPAN
from envpools_cli.server.sandbox.engine import ContainerRuntime
from envpools_cli.server.sandbox.usernet import RESOLV_CONF, slirp4netns, slirp_argv

__all__ = ["BUILD_UID", "INSIDE", "BuildSandbox", "build_store"]

BUILD_UID = DEFAULT_SANDBOX_UID + SANDBOX_UID_SPAN
"""The first host uid (and gid) of builds: just above the rollouts' range."""
BUILD_UID_SPAN = 65536
INSIDE = "/var/tmp/envpools-build"
"""Where the build's own folder appears inside its mount namespace."""
HIDDEN = ("/tmp", "/var/tmp", "/dev/shm", "/home", "/root", "/run/user")
_ENV_NAMES = ("PATH", "LANG")
_FOLDERS = ("store", "runroot", "libpod", "home", "run", "tmp", "shm", "contexts", "blobs")
_TIMEOUT = 120.0
_RECHECK_SEC = 60.0

#: Runs as root: makes the namespaces (see the module), maps the user namespace, attaches
#: slirp4netns when the build may use the network, then execs the command inside.
LAUNCHER = r"""
# Everything is imported first: /root (where this Python may live) is hidden below.
import ctypes, fcntl, json, os, select, socket, struct, sys

cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWUSER, NEWNET = 0x20000, 0x10000000, 0x40000000
REC, PRIVATE, BIND, NOSUID, NODEV = 0x4000, 0x40000, 0x1000, 0x2, 0x4
uid, span = cfg["uid"], cfg["span"]


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    as_bytes = lambda text: text.encode() if text else None
    result = libc.mount(as_bytes(source), as_bytes(target), as_bytes(fstype), flags, as_bytes(data))
    check(result, f"mount {target}")


def lo_up():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(probe, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(probe, 0x8914, struct.pack("16sH", b"lo", flags | 1))
    probe.close()


down_r, down_w = os.pipe()
up_r, up_w = os.pipe()
child = os.fork()
if child == 0:
    os.close(down_w)
    os.close(up_r)
    try:
        check(libc.unshare(NEWNS), "unshare(mount)")
        mount("none", "/", None, REC | PRIVATE)
        # Opened in this namespace (a bind needs that) and before /tmp and the rest are
        # hidden, since the build folder may be under one of them.
        area = os.open(cfg["area"], os.O_PATH | os.O_DIRECTORY)
        for folder in cfg["hide"]:
            if os.path.isdir(folder) and not os.path.islink(folder):
                mount("tmpfs", folder, "tmpfs", NOSUID | NODEV, "mode=1777,size=1m")
        os.mkdir(cfg["inside"], 0o700)
        mount(f"/proc/self/fd/{area}", cfg["inside"], None, BIND | REC)
        os.close(area)
        mount(os.path.join(cfg["inside"], "shm"), "/dev/shm", None, BIND)
        mount(os.path.join(cfg["inside"], "resolv.conf"), "/etc/resolv.conf", None, BIND)
        # The user namespace is made by the build uid, so that it owns it; root only
        # writes its map.
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        check(libc.unshare(NEWUSER), "unshare(user)")
        libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: slirp4netns opens /proc/PID/ns/*
        os.write(up_w, b"u")
        if os.read(down_r, 1) != b"m":
            os._exit(125)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        check(libc.unshare(NEWNS | NEWNET), "unshare(mount, net)")
        libc.prctl(4, 1, 0, 0, 0)
        lo_up()
        os.write(up_w, b"n")
        if os.read(down_r, 1) != b"g":
            os._exit(125)
        os.close(up_w)
        os.chdir(cfg["inside"])
        os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
    except BaseException as exc:
        sys.stderr.write(f"envpools build sandbox: {exc}\n")
        sys.stderr.flush()
        os._exit(125)

os.close(down_r)
os.close(up_w)


def finish(code):
    _, status = os.waitpid(child, 0)
    sys.exit(code if code is not None else os.waitstatus_to_exitcode(status))


if os.read(up_r, 1) != b"u":
    finish(None)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{child}/{name}", "w") as handle:
        handle.write(f"0 {uid} {span}\n")
os.write(down_w, b"m")
if os.read(up_r, 1) != b"n":
    finish(None)
slirp = None
if cfg["slirp"]:
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    fill = {"{pid}": str(child), "{ready}": str(ready_w), "{exit}": str(exit_r)}
    argv = []
    for arg in cfg["slirp"]:
        for placeholder, value in fill.items():
            arg = arg.replace(placeholder, value)
        argv.append(arg)
    slirp = os.fork()
    if slirp == 0:
        try:
            os.set_inheritable(ready_w, True)
            os.set_inheritable(exit_r, True)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(ready_w)
    os.close(exit_r)
    ready, _, _ = select.select([ready_r], [], [], 20)
    if not ready or os.read(ready_r, 1) != b"1":
        sys.stderr.write("envpools build sandbox: slirp4netns did not start\n")
        os.kill(child, 9)
        finish(125)
os.write(down_w, b"g")
_, status = os.waitpid(child, 0)
if slirp:
    os.close(exit_w)
    os.waitpid(slirp, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def build_store(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """The build sandbox's folder: ``ENVPOOLS_BUILD_STORE``, else one per machine.

    One per machine, like the engine's own store: base images are copied in once, not
    once per backend.
    """
    env = os.environ if env is None else env
    if value := (env.get("ENVPOOLS_BUILD_STORE") or "").strip():
        return Path(value)
    return Path("/var/lib/envpools") / f"build-{BUILD_UID}"


@dataclass
class BuildSandbox:
    """podman in the build user namespace, with the build store (see the module)."""

    runtime: ContainerRuntime
    area: Path
    network: bool = True
    """Whether builds may use the network (user-mode egress); False: loopback only."""
    uid: int = BUILD_UID
    storage_driver: str = "overlay"
    _checked: float | None = field(default=None, init=False)
    _problem: str | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _bases_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # --- setting up ----------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why builds cannot run here (None: they can), found by running podman inside.

        A success is kept; a failure is checked again after a minute (a busy machine
        can make the first check time out).
        """
        with self._lock:
            stale = self._checked is None or (
                self._problem is not None and time.monotonic() - self._checked > _RECHECK_SEC
            )
            if stale:
                self._problem = self._prepare()
                self._checked = time.monotonic()
            return self._problem

    def known(self, wait: float) -> tuple[bool, str | None]:
        """``(checked, problem)`` without starting a check, waiting at most ``wait`` seconds
        for one under way: what status shows (a health check must not wait for podman)."""
        if not self._lock.acquire(timeout=wait):
            return False, None
        try:
            return self._checked is not None, self._problem
        finally:
            self._lock.release()

    def _prepare(self) -> str | None:
        if os.geteuid() != 0:
            return "the backend is not root: it cannot map a user namespace for builds"
        if self.runtime.engine != "podman":
            return f"builds under {self.runtime.engine} run in its own builder"
        if self.network and slirp4netns() is None:
            return "slirp4netns is not installed (builds need it for the network)"
        try:
            self._lay_out()
        except OSError as exc:
            return f"the build store {self.area} cannot be made: {exc}"
        done = self.run("info", "--format", "{{.Store.GraphDriverName}}", network=False)
        if done.returncode != 0:
            text = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
            return f"podman does not run in a user namespace here: {_last(text)}"
        return None

    def _lay_out(self) -> None:
        self.area.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.area.mkdir(exist_ok=True, mode=0o700)
        for name in (
            "store",
            "runroot",
            "libpod",
            "home",
            "run",
            "tmp",
            "shm",
            "contexts",
            "blobs",
        ):
            (self.area / name).mkdir(exist_ok=True, mode=0o700)
        files = {
            "resolv.conf": RESOLV_CONF,
            "storage.conf": (
                f'[storage]\ndriver = "{self.storage_driver}"\n'
                f'graphroot = "{INSIDE}/store"\nrunroot = "{INSIDE}/runroot"\n'
            ),
            "containers.conf": (
                f'[engine]\ntmp_dir = "{INSIDE}/libpod"\nevents_logger = "none"\n'
                'cgroup_manager = "cgroupfs"\n'
            ),
        }
        for name, text in files.items():
            path = self.area / name
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
            path.chmod(0o644)
        # Only what is made here: the rest (the store, contexts and transfers of builds
        # that may be running in another backend now) is the build uid's already.
        for path in (
            self.area,
            *(self.area / n for n in _FOLDERS),
            *(self.area / n for n in files),
        ):
            os.lchown(path, self.uid, self.uid)

    # --- running podman inside -----------------------------------------------------------

    def inside(self, path: Path) -> str:
        """Where ``path`` (in the build folder) is seen from inside."""
        return f"{INSIDE}/{path.relative_to(self.area).as_posix()}"

    def command(self, *args: str, network: bool | None = None) -> list[str]:
        """argv of the launcher running ``podman ARGS`` inside (see ``LAUNCHER``)."""
        executable = os.path.realpath(self.runtime.executable)
        podman = [executable]
        if self.runtime.oci_runtime:
            podman += ["--runtime", self.runtime.oci_runtime]
        env = {k: v for k, v in os.environ.items() if k in _ENV_NAMES}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            HOME=f"{INSIDE}/home",
            XDG_RUNTIME_DIR=f"{INSIDE}/run",
            TMPDIR=f"{INSIDE}/tmp",
            CONTAINERS_CONF=f"{INSIDE}/containers.conf",
            CONTAINERS_STORAGE_CONF=f"{INSIDE}/storage.conf",
        )
        online = self.network if network is None else network
        slirp = None
        if online and (found := slirp4netns()):
            # Placeholders the launcher fills in: the pid and descriptors are its own.
            slirp = slirp_argv(
                found, "{pid}", ready_fd="{ready}", exit_fd="{exit}", userns="/proc/{pid}/ns/user"
            )
        config = {
            "uid": self.uid,
            "span": BUILD_UID_SPAN,
            "area": str(self.area),
            "inside": INSIDE,
            "hide": list(HIDDEN),
            "slirp": slirp,
            "argv": [*podman, *args],
            "env": env,
        }
        python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        return [python, "-I", "-S", "-c", LAUNCHER, json.dumps(config)]

    def run(self, *args: str, network: bool = False) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.command(*args, network=network),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )

    # --- images in and out ---------------------------------------------------------------

    def image_id(self, ref: str) -> str | None:
        done = self.run("image", "inspect", "--format", "{{.Id}}", ref)
        if done.returncode != 0:
            return None
        return done.stdout.decode().strip() or None

    def bring_in(self, ref: str, image_id: str) -> None:
        """Copy a base image from the engine's store into the build store (if not there),
        and keep its layers, uncompressed, for ``take_out``."""
        with self._bases_lock:
            if self.image_id(ref) != image_id:
                _pipe(
                    self.runtime.command("save", "--format", "docker-archive", ref),
                    self.command("load", network=False),
                    what=f"copying {ref} into the build store",
                )
            self._keep_layers(ref)

    def _keep_layers(self, ref: str) -> None:
        """The layer tarballs of ``ref`` in ``blobs/``, named by digest (once per layer)."""
        done = self.run("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref)
        try:
            layers = [str(d).removeprefix("sha256:") for d in json.loads(done.stdout or b"[]")]
        except ValueError:
            return
        blobs = self.area / "blobs"
        missing = [d for d in layers if not (blobs / d).is_file()]
        if not missing:
            return
        with self._folder("transfer") as folder:
            # ``dir:`` keeps layers as the store has them: uncompressed, named by digest.
            pushed = self.run("push", ref, f"dir:{self.inside(folder)}")
            if pushed.returncode != 0:
                return  # take_out then copies the layer itself, only slower
            for digest in missing:
                with contextlib.suppress(FileExistsError, FileNotFoundError):
                    os.link(folder / digest, blobs / digest)

    def take_out(self, ref: str) -> None:
        """Copy a built image to the engine's store, and drop it from the build store.

        Through an OCI layout that already holds the base layers (hard links into
        ``blobs/``): only the layers the build made are written and read.
        """
        try:
            with self._folder("transfer") as folder:
                layout = folder / "blobs" / "sha256"
                layout.mkdir(parents=True)
                for path in (folder / "blobs", layout):
                    os.chown(path, self.uid, self.uid)
                for blob in (self.area / "blobs").iterdir():
                    os.link(blob, layout / blob.name)
                # Uncompressed (compressing a big layer costs more than copying it), into a
                # layout that has the base layers already: they are not written again.
                saved = self.run(
                    "save", "--format", "oci-dir", "--uncompressed", "-o", self.inside(folder), ref
                )
                if saved.returncode != 0:
                    text = (saved.stdout + saved.stderr).decode("utf-8", "replace")
                    raise OSError(f"copying {ref} out of the build store failed: {_last(text)}")
                pulled = subprocess.run(
                    self.runtime.command("pull", "--quiet", f"oci:{folder}"),
                    capture_output=True,
                    timeout=10 * _TIMEOUT,
                    check=False,
                )
                image = pulled.stdout.decode().strip().splitlines()[-1:] or [""]
                if pulled.returncode != 0 or not image[0]:
                    text = (pulled.stdout + pulled.stderr).decode("utf-8", "replace")
                    raise OSError(f"copying {ref} into the engine's store failed: {_last(text)}")
                # The pull names it for the folder: the name it was built as instead.
                for argv in (("tag", image[0], ref), ("untag", image[0], _pulled_name(folder))):
                    subprocess.run(
                        self.runtime.command(*argv), capture_output=True, timeout=60, check=False
                    )
        finally:
            self.run("rmi", "--force", ref)

    @contextlib.contextmanager
    def _folder(self, under: str) -> Iterator[Path]:
        """A new folder of the build uid's in the build folder, removed afterwards."""
        parent = self.area / under
        parent.mkdir(exist_ok=True, mode=0o700)
        os.chown(parent, self.uid, self.uid)
        folder = parent / os.urandom(8).hex()
        folder.mkdir(mode=0o700)
        os.chown(folder, self.uid, self.uid)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _pulled_name(folder: Path) -> str:
    return f"localhost{folder.as_posix().lower()}:latest"


def _pipe(producer: list[str], consumer: list[str], *, what: str) -> None:
    """``producer | consumer``; OSError naming ``what`` when either fails."""
    first = subprocess.Popen(
        producer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        second = subprocess.run(
            consumer,
            stdin=first.stdout,
            capture_output=True,
            timeout=10 * _TIMEOUT,
            check=False,
        )
    finally:
        if first.stdout is not None:
            first.stdout.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            first.wait(_TIMEOUT)
        if first.poll() is None:
            first.kill()
            first.wait()
    errors = first.stderr.read() if first.stderr else b""
    if first.stderr is not None:
        first.stderr.close()
    if first.returncode != 0 or second.returncode != 0:
        text = (errors + second.stdout + second.stderr).decode("utf-8", "replace")
        raise OSError(f"{what} failed: {_last(text)}")


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:300]
