"""Finding 3 (MEDIUM): under bubblewrap, ``allow_internet = true`` put the verifier in the
host's network namespace, where it reached the backend's API and every loopback service.

A task grants itself ``allow_internet``, so the verifier here probes what it must not
reach: the backend's port and another service on the host's loopback, directly and
through slirp4netns's alias for the host (10.0.2.2). It must be in a network namespace
of its own that does have a way out (bwrap: slirp4netns's ``tap0`` and its DNS; the
container driver: the engine's bridge). No internet is reachable from CI, so egress is
shown by a service on the host's own non-loopback address, which the way out reaches.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Backend, hostile_run, make_task


def _external_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this picks the route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture
def services() -> Iterator[dict[str, int]]:
    """A service on the host's loopback only, and one on every address."""
    found: dict[str, int] = {}
    servers = []
    stop = threading.Event()
    for name, host in (("loopback", "127.0.0.1"), ("everywhere", "0.0.0.0")):
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, 0))
        server.listen(16)
        server.settimeout(0.2)
        found[name] = server.getsockname()[1]
        servers.append(server)

        def serve(sock: socket.socket = server) -> None:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                conn.sendall(b"HOST-SERVICE\n")
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
    yield found
    stop.set()
    for server in servers:
        server.close()


def probe(name: str, host: str, port: int) -> str:
    """One ``name=open|closed`` line from bash's /dev/tcp (no tool needed in the image)."""
    return (
        f"if timeout 4 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; "
        f"then echo {name}=open; else echo {name}=closed; fi"
    )


def test_the_verifier_with_internet_is_not_in_the_hosts_network(
    backend: Backend, driver: str, tmp_path: Path, services: dict[str, int]
) -> None:
    if driver == "bwrap" and os.geteuid() != 0 and not os.access("/dev/net/tun", os.W_OK):
        pytest.skip("/dev/net/tun is root's only here: slirp4netns cannot run unprivileged")
    port = int(backend.url.rsplit(":", 1)[1])
    checks = [
        probe("backend", "127.0.0.1", port),
        probe("loopback_service", "127.0.0.1", services["loopback"]),
        probe("backend_via_slirp_host", "10.0.2.2", port),
        probe("service_via_slirp_host", "10.0.2.2", services["loopback"]),
    ]
    external = _external_address()
    if external:
        checks.append(probe("external", external, services["everywhere"]))
    task = make_task(
        tmp_path,
        "internet-verifier",
        toml="[environment]\nallow_internet = true\n",
        test="\n".join(
            [
                *checks,
                'echo "netns=$(readlink /proc/self/ns/net)"',
                "echo \"interfaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' "
                '| sort | tr "\\n" ,)"',
                "echo \"dns=$(grep -m1 nameserver /etc/resolv.conf | cut -d' ' -f2)\"",
                "echo 1 > /logs/verifier/reward.txt",
            ]
        ),
    )
    run = hostile_run(backend, task, timeout=180)
    assert run.doc["status"] == "succeeded", run.doc
    found = run.values()
    assert found["backend"] == "closed", "the verifier reached the backend's API"
    assert found["loopback_service"] == "closed", "the verifier reached the host's loopback"
    assert found["backend_via_slirp_host"] == "closed"
    assert found["service_via_slirp_host"] == "closed"
    assert found["netns"] != os.readlink("/proc/self/ns/net"), "the host's network namespace"
    interfaces = set(found["interfaces"].strip(",").split(","))
    assert interfaces - {"lo"}, f"no way out at all: {interfaces}"
    if driver == "bwrap":
        assert "tap0" in interfaces, interfaces
        assert found["dns"] == "10.0.2.3"
    if external:
        assert found["external"] == "open", "allow_internet gives a way out"
