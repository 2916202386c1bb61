"""The container sandbox driver: each phase of a rollout in the task's own image.

One ``<engine> run --rm`` per phase, as Harbor lays a trial out: the workspace (copied out
of the image's working folder, see ``environments.py``) at ``/app`` or the image's
WORKDIR, ``/logs/{agent,verifier,artifacts}`` bound from the trial folder, ``/tests``
only for the verifier and ``/solution`` only for the oracle. The container gets:

- the rollout's own uid (a root backend; the same one bwrap would use) with every
  capability dropped and ``no-new-privileges``; a read-only root, a sized ``/tmp``;
- the task's resources as cgroup limits (``--memory``, ``--pids-limit``, ``--cpus``)
  and explicit ulimits within this process's hard limits;
- no network at all (``--network none``) unless the task allows the internet; an agent
  that needs its provider gets a network namespace with loopback only, where a
  forwarder run by the backend (outside the container: no Python needed in the image)
  relays ``127.0.0.1:GATEWAY_PORT`` to the rollout's egress gateway, the same address
  and placeholder key the bwrap sandbox gives it. The real key never enters it;
- the agent CLIs read-only from the installed tool tree, and this host's ``node``
  (``/envpools/runtime/bin``, last on PATH) for the CLIs that are Node scripts.

Every container is named, labelled with its backend and removed on exit, timeout or
cancel (``rm -f``), and a backend removes whatever its previous run left (``reap``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envpools_cli.server.sandbox.build_sandbox import BuildSandbox, build_store
from envpools_cli.server.sandbox.drivers import (
    Launch,
    Mount,
    SandboxDriver,
    SandboxSpec,
    make_driver,
)
from envpools_cli.server.sandbox.engine import MANAGED_LABEL, ContainerRuntime, probe_runtime
from envpools_cli.server.sandbox.images import ImageInfo, Images, parse_image_map

__all__ = [
    "OWNER_LABEL",
    "SANDBOX_CHOICES",
    "ContainerDriver",
    "DriverChoice",
    "make_any_driver",
]

SANDBOX_CHOICES = ("auto", "container", "bwrap", "process")
OWNER_LABEL = "envpools.backend"
ROLLOUT_LABEL = "envpools.rollout"
AGENTS_ROOT = "/envpools/agents"
RUNTIME_BIN = "/envpools/runtime/bin"
DEFAULT_IMAGE = "localhost/envpools/bookworm:latest"
_STANDARD_PATH = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
)
#: The engine client's own environment: these, from the backend's environment, and nothing
#: of the task's or the pool's (``CONTAINER_HOST`` there would send the client elsewhere).
ENGINE_CLIENT_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "REGISTRY_AUTH_FILE",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)
ENV_SCRIPT = "/envpools/env.sh"
"""Where variables an env file cannot hold (a line break in the value) are sourced from."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_FILE_LINE = 60_000
"""The engines read env files line by line, in lines of at most 64 KiB."""
_FORWARDER_START_SEC = 20.0

#: Runs on the host, in a network namespace of its own that the container joins: brings
#: loopback up, listens on 127.0.0.1:PORT, drops to nobody, and relays every connection
#: to the gateway's unix socket; it exits when the backend that started it is gone.
NETNS_FORWARDER = r"""
import fcntl, os, socket, struct, sys, threading, time

port, target, parent = int(sys.argv[1]), sys.argv[2], os.getppid()
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
request = struct.pack("16sH", b"lo", 0)
flags = struct.unpack("16sH", fcntl.ioctl(probe, 0x8913, request))[1]
fcntl.ioctl(probe, 0x8914, struct.pack("16sH", b"lo", flags | 1))
probe.close()
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(128)
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
sys.stdout.write("ready\n")
sys.stdout.flush()

def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

def relay(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(target)
    except OSError:
        client.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()

def orphaned():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)

threading.Thread(target=orphaned, daemon=True).start()
while True:
    client, _ = listener.accept()
    threading.Thread(target=relay, args=(client,), daemon=True).start()
"""


class NetnsForwarder:
    """One phase's forwarder process (see ``NETNS_FORWARDER``)."""

    def __init__(self, socket_path: Path, port: int) -> None:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise OSError("unshare (util-linux) is needed to give an agent its provider")
        python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        self.proc = subprocess.Popen(
            [
                unshare,
                "--net",
                python,
                "-I",
                "-S",
                "-c",
                NETNS_FORWARDER,
                str(port),
                str(socket_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        ready = threading.Event()
        stdout = self.proc.stdout

        def wait_ready() -> None:
            if stdout is not None and stdout.readline():
                ready.set()

        threading.Thread(target=wait_ready, daemon=True).start()
        if not ready.wait(_FORWARDER_START_SEC) or self.proc.poll() is not None:
            errors = b""
            self.stop()
            with contextlib.suppress(Exception):
                errors = self.proc.stderr.read() if self.proc.stderr else b""
            raise OSError(
                "the egress forwarder did not start: "
                + (errors.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            )

    @property
    def netns(self) -> str:
        return f"/proc/{self.proc.pid}/ns/net"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _write_private(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)


def owner_id(data_dir: Path) -> str:
    """What labels this backend's containers: one value per data folder."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]


class ContainerDriver(SandboxDriver):
    name = "container"
    isolated = True
    egress_in_sandbox = False

    def __init__(
        self,
        runtime: ContainerRuntime,
        images: Images,
        *,
        owner: str,
        default_image: str = DEFAULT_IMAGE,
        gateway_port: int = 41547,
    ) -> None:
        self.runtime = runtime
        self.images = images
        self.owner = owner
        self.default_image = default_image
        self.gateway_port = gateway_port
        self.switches_user = os.geteuid() == 0
        node = shutil.which("node")
        self.node = Path(os.path.realpath(node)) if node else None
        self._image_env: dict[str, ImageInfo] = {}
        self._lock = threading.Lock()

    # --- reporting ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            **self.runtime.describe(),
            "default_image": self.default_image,
            "image_map": dict(self.images.image_map),
            "builds": self.images.describe(),
        }

    def memory_limit(self) -> dict[str, Any]:
        return {
            "method": "container",
            "how": f"resident memory, per container: {self.runtime.engine} run --memory",
            "cpu_waits": "machine-wide (PSI)",
        }

    # --- running -----------------------------------------------------------------------

    def _image(self, ref: str) -> ImageInfo | None:
        with self._lock:
            cached = self._image_env.get(ref)
        if cached is None:
            cached = self.images.inspect(ref)
            if cached is not None:
                with self._lock:
                    self._image_env[ref] = cached
        return cached

    def _search_path(self, wanted: str | None, image: ImageInfo | None, node: bool) -> str:
        own = [p for p in (wanted or "").split(":") if p and p not in _STANDARD_PATH]
        base = (image.env.get("PATH") if image else None) or ":".join(_STANDARD_PATH)
        parts = [*own, *base.split(":")]
        if node:
            parts.append(RUNTIME_BIN)
        return ":".join(dict.fromkeys(p for p in parts if p))

    def launch(self, spec: SandboxSpec) -> Launch:
        ref = spec.image or self.default_image
        image = self._image(ref)
        if image is None:
            raise OSError(f"the image {ref} is not in {self.runtime.engine}'s store")
        for mount in [Mount(spec.workspace, spec.workdir, True), *spec.mounts]:
            if "," in str(mount.source) or "," in mount.target:
                raise OSError(f"a path with a comma cannot be mounted: {mount.source}")
        name = f"envpools-{secrets.token_hex(8)}"
        forwarder = None
        if spec.egress_socket is not None:
            forwarder = NetnsForwarder(spec.egress_socket, self.gateway_port)
            network = f"ns:{forwarder.netns}"
        elif spec.network:
            network = None  # the engine's default network: a bridge out, not the host's loopback
        else:
            network = "none"
        scratch = Path(tempfile.mkdtemp(prefix="envpools-env-"))
        try:
            argv, env = self._argv(spec, ref, image, name, network, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            if forwarder is not None:
                forwarder.stop()
            raise

        def stop() -> None:
            self._remove(name)

        def cleanup(exit_code: int | None) -> None:
            # A normal exit removed the container (--rm); an engine error (125-127), a
            # signal or a stop may leave it behind.
            if exit_code is None or exit_code < 0 or exit_code >= 125:
                self._remove(name)
            shutil.rmtree(scratch, ignore_errors=True)
            if forwarder is not None:
                forwarder.stop()

        return Launch(argv, env, "/", stop=stop, cleanup=cleanup)

    def _argv(
        self,
        spec: SandboxSpec,
        ref: str,
        image: ImageInfo,
        name: str,
        network: str | None,
        scratch: Path,
    ) -> tuple[list[str], dict[str, str]]:
        limits = spec.limits
        args = ["run", "--rm", "--name", name, "--hostname", "sandbox"]
        args += ["--label", f"{MANAGED_LABEL}=run", "--label", f"{OWNER_LABEL}={self.owner}"]
        if spec.label:
            args += ["--label", f"{ROLLOUT_LABEL}={spec.label}"]
        # Output goes to the backend through the attached client only, not to a log.
        args += ["--pull", "never", "--log-driver", "none"]
        if self.runtime.init:
            args.append("--init")
        if network is not None:
            args += ["--network", network]
        args += ["--cap-drop", "all", "--security-opt", "no-new-privileges", "--read-only"]
        if spec.user is not None and self.switches_user:
            args += ["--user", f"{spec.user.uid}:{spec.user.gid}"]
        elif self.runtime.engine == "podman" and os.geteuid() != 0:
            args += ["--userns", "keep-id"]
        memory = f"{limits.memory_mb}m"
        args += ["--memory", memory, "--memory-swap", memory, "--pids-limit", str(limits.processes)]
        if limits.cpus:
            args += ["--cpus", str(limits.cpus)]
        args += self.runtime.ulimits(nofile=limits.open_files, nproc=limits.processes)
        fsize = limits.file_mb * 1024 * 1024
        args += ["--ulimit", f"fsize={fsize}:{fsize}"]
        tmp_kb = limits.tmp_bytes // 1024
        args += ["--tmpfs", f"/tmp:rw,exec,nosuid,nodev,size={tmp_kb}k,mode=1777"]
        args += ["--shm-size", f"{tmp_kb}k"]
        node = self.node is not None and any(m.target.startswith(AGENTS_ROOT) for m in spec.mounts)
        mounts = [Mount(spec.workspace, spec.workdir, writable=True), *spec.mounts]
        if node and self.node is not None:
            mounts.append(Mount(self.node, f"{RUNTIME_BIN}/node"))
        for mount in mounts:
            option = f"type=bind,source={mount.source},target={mount.target}"
            args += ["--mount", option if mount.writable else option + ",readonly"]
        args += ["--workdir", spec.workdir]
        # The container's variables travel in an env file (0600, removed afterwards): not
        # on the client's command line, which every user of the host can read, and not in
        # the client's own environment, where CONTAINER_HOST & co. would steer the client.
        inside = {"HOME": "/tmp/home", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "sandbox"}
        inside.update(spec.env)
        inside["PATH"] = self._search_path(spec.env.get("PATH"), image, node)
        sourced = self._write_env(inside, scratch, spec)
        args += ["--env-file", str(scratch / "env")]
        prelude = 'mkdir -p "$HOME" 2>/dev/null; exec "$@"'
        if sourced:
            script = f"type=bind,source={scratch / 'env.sh'},target={ENV_SCRIPT},readonly"
            args += ["--mount", script]
            prelude = f". {ENV_SCRIPT}; {prelude}"
        if spec.stdin is not None:
            args.append("-i")
        env = {k: v for k, v in os.environ.items() if k in ENGINE_CLIENT_ENV}
        home = ["/bin/sh", "-c", prelude, "sandbox"]
        return self.runtime.command(*args, ref, *home, *spec.command), env

    @staticmethod
    def _write_env(values: dict[str, str], scratch: Path, spec: SandboxSpec) -> bool:
        """Write the env file (and the script for multi-line values); whether a script is used.

        A value with a line break (or a very long one) cannot be a line of an env file: it
        goes to a shell script the container sources, quoted, readable by its user only.
        """
        lines, script = [], []
        for key, value in values.items():
            if "\n" in value or "\r" in value or len(key) + len(value) > _ENV_FILE_LINE:
                if not _ENV_NAME.fullmatch(key):
                    raise OSError(f"the variable {key!r} (a multi-line value) needs a plain name")
                script.append(f"export {key}={shlex.quote(value)}\n")
            elif not key or "=" in key or any(c.isspace() for c in key):
                raise OSError(f"the variable name {key!r} cannot be passed to a container")
            else:
                lines.append(f"{key}={value}\n")
        _write_private(scratch / "env", "".join(lines), 0o600)
        if not script:
            return False
        path = scratch / "env.sh"
        _write_private(path, "".join(script), 0o400)
        if spec.user is not None and os.geteuid() == 0:
            os.chown(path, spec.user.uid, spec.user.gid)
        return True

    def _remove(self, name: str) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                self.runtime.command("rm", "-f", "-t", "0", name)
                if self.runtime.engine == "podman"
                else self.runtime.command("rm", "-f", name),
                capture_output=True,
                timeout=60,
                check=False,
            )

    # --- tidying -----------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Containers of this backend that exist now (running or not)."""
        done = subprocess.run(
            self.runtime.command(
                "ps",
                "-a",
                "--filter",
                f"label={OWNER_LABEL}={self.owner}",
                "--format",
                "{{.Names}}",
            ),
            capture_output=True,
            timeout=60,
            check=False,
        )
        return [line.strip() for line in done.stdout.decode().splitlines() if line.strip()]

    def reap(self) -> list[str]:
        """Remove what a previous run of this backend left (it was killed, or crashed)."""
        names = self.leftovers()
        for name in names:
            self._remove(name)
        return names


def _env_choice(env: dict[str, str] | os._Environ[str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class DriverChoice:
    """The sandbox driver a backend uses, and what to tell about that choice."""

    driver: SandboxDriver
    warning: str | None = None
    """A fallback that weakens isolation (plain processes), or a missing feature."""
    note: str | None = None
    """Why ``auto`` passed over the container driver (not a problem: bwrap isolates)."""


def make_any_driver(choice: str, *, owner: str = "", cache_dir: Path | None = None) -> DriverChoice:
    """``auto``: a working container engine, else bubblewrap, else plain processes."""
    if choice not in SANDBOX_CHOICES:
        raise RuntimeError(
            f"unknown sandbox driver {choice!r}: choose auto, container, bwrap or process"
        )
    note = None
    if choice in ("auto", "container"):
        probe = probe_runtime()
        if probe.runtime is not None:
            build_network = _env_choice(os.environ, "ENVPOOLS_BUILD_NETWORK")
            mounts = (_env_choice(os.environ, "ENVPOOLS_BUILD_MOUNTS") or "refuse").lower()
            if mounts not in ("refuse", "allow"):
                raise RuntimeError(f"ENVPOOLS_BUILD_MOUNTS={mounts!r}: choose refuse or allow")
            sandbox = None
            if probe.runtime.engine == "podman" and os.geteuid() == 0:
                sandbox = BuildSandbox(
                    probe.runtime, build_store(), network=build_network != "none"
                )
                # Checked now, in the background: status would otherwise wait for it.
                threading.Thread(target=sandbox.problem, daemon=True).start()
            images = Images(
                probe.runtime,
                image_map=parse_image_map(os.environ.get("ENVPOOLS_IMAGE_MAP")),
                build_network=build_network,
                workspace_cache=cache_dir,
                sandbox=sandbox,
                allow_mounts=mounts == "allow",
            )
            container = ContainerDriver(
                probe.runtime,
                images,
                owner=owner or owner_id(Path.cwd()),
                default_image=_env_choice(os.environ, "ENVPOOLS_DEFAULT_IMAGE") or DEFAULT_IMAGE,
            )
            container.reap()
            images.forget_workspaces()
            return DriverChoice(container)
        if choice == "container":
            raise RuntimeError(f"no container engine works here: {probe.reason}")
        note = f"no container engine works here ({probe.reason})"
    driver, warning = make_driver("auto" if choice == "auto" else choice)
    if note and driver.name == "process":
        warning, note = f"{note}; {warning}", None
    return DriverChoice(driver, warning, note)


def wait_gone(driver: ContainerDriver, timeout: float = 30.0) -> list[str]:
    """This backend's containers still present after ``timeout`` (for tests and shutdown)."""
    deadline = time.monotonic() + timeout
    left = driver.leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = driver.leftovers()
    return left
