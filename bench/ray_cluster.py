"""A real multi-node Ray cluster on this machine, in a private network namespace
(for tests/cluster and ``python -m bench.scale``).

reference/RAY_ON_ONE_MACHINE.md: a head and worker nodes as separate ``ray start``
processes with ports of their own, in a network namespace where loopback is the only
interface, so that every address Ray picks is 127.0.0.1 and no traffic leaves the
machine. The test's main thread enters that namespace (``setns`` moves only the calling
thread) and everything it starts from there, the backend, the nodes, the SDK's process,
lives in it; the thread returns to its own namespace at the end.

Every process a cluster starts is found by its temporary folder (on each command line
Ray runs) and stopped by its id; ``ray stop`` would stop every Ray process of the
machine, other people's included.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
HEAD_PORT = 26379
RESOURCE = "sandbox_slot"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


@contextlib.contextmanager
def private_network() -> Iterator[None]:
    """This thread (and whatever it starts) in a new network namespace with loopback up."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    libc = _libc()
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"unshare(CLONE_NEWNET): {os.strerror(error)}")
        try:
            _loopback_up()
            yield
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"setns back: {os.strerror(error)}")
    finally:
        os.close(original)


def namespaces_available() -> str | None:
    """Why a private network namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (a network namespace of its own)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n fails here: {probe.stderr.strip()}"
    return None


@dataclass
class Node:
    name: str
    ports: tuple[int, int, int, int]
    """node manager, object manager, first and last worker port."""
    slots: int


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    nodes: dict[str, Node] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{HEAD_PORT}"

    @property
    def ray(self) -> str:
        return str(Path(sys.executable).parent / "ray")

    def _start(self, args: list[str], node: Node) -> None:
        manager, objects, low, high = node.ports
        command = [
            self.ray,
            "start",
            *args,
            "--num-cpus",
            "1",
            "--node-manager-port",
            str(manager),
            "--object-manager-port",
            str(objects),
            "--min-worker-port",
            str(low),
            "--max-worker-port",
            str(high),
            "--disable-usage-stats",
        ]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"ray start ({node.name}) failed:\n{done.stdout}\n{done.stderr}")
        self.nodes[node.name] = node

    def start_head(self) -> None:
        head = Node("head", (26380, 26381, 26400, 26449), 0)
        args = ["--head", "--port", str(HEAD_PORT), "--include-dashboard", "false"]
        self._start([*args, "--temp-dir", str(self.root / "ray")], head)

    def start_worker(self, name: str, base: int, slots: int = 2) -> None:
        node = Node(name, (base, base + 1, base + 10, base + 59), slots)
        resources = json.dumps({RESOURCE: slots})
        self._start(["--address", self.address, "--resources", resources], node)

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process of this cluster (its folder is on it)."""
        marker = str(self.root)
        found: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if marker in command:
                    found[int(entry.name)] = command
        return found

    def kill_worker(self, name: str) -> None:
        """Lose a worker node: its raylet is killed (its workers and sandboxes follow)."""
        manager = self.nodes[name].ports[0]
        raylets = [
            pid
            for pid, command in self.processes().items()
            if "/raylet " in command and f"--node_manager_port={manager} " in command
        ]
        assert raylets, f"no raylet of {name} found"
        for pid in raylets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed.add(name)

    def stop(self) -> list[str]:
        """Stop every process of the cluster; what was still there after SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)
        return list(self.processes().values())


def start_cluster(workers: int, home: Path) -> Cluster:
    """A head (no sandbox slots: it runs no trials) and ``workers`` worker nodes with two
    slots and one CPU each. Its folder is short: Ray's socket paths live under it."""
    root = Path(tempfile.mkdtemp(prefix="epray-", dir="/tmp"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
        "HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Lose a killed node in seconds, and keep the cluster's own chatter down.
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_failure_threshold": "5",
        "RAY_BACKEND_LOG_LEVEL": "warning",
    }
    (root / "ray").mkdir()
    cluster = Cluster(root, env)
    try:
        cluster.start_head()
        for index in range(workers):
            node_env = {**env, "ENVPOOLS_NODE_DIR": str(root / f"node{index + 1}")}
            cluster.env, saved = node_env, env
            try:
                cluster.start_worker(f"worker{index + 1}", 26500 + 100 * index)
            finally:
                cluster.env = saved
    except BaseException:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster
