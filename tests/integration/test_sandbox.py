"""The bwrap sandbox: the agent writes only to /app and /logs, cannot see /tests before the
verifier runs, has no network, and runs unprivileged in its own pid namespace."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.sandbox.drivers import ProcessDriver, SandboxSpec, make_driver

from .conftest import Backend, local_task, make_task, needs_bwrap

pytestmark = needs_bwrap


@pytest.fixture
def listener() -> tuple[int, list[bytes]]:
    """A TCP server on the host's loopback that records anyone who reaches it."""
    server = socket.create_server(("127.0.0.1", 0))
    hits: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            hits.append(conn.recv(100))
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1], hits


def probe_script(host_marker: Path, port: int) -> str:
    return f"""
    try() {{ if eval "$2" >/dev/null 2>&1; then echo "$1=yes"; else echo "$1=no"; fi; }}
    try write_app       'echo x > /app/agent-was-here'
    try write_logs      'echo x > /logs/agent/probe.txt'
    try write_artifacts 'echo x > /logs/artifacts/probe.txt'
    try write_etc       'echo x > /etc/envpools-probe'
    try write_usr       'echo x > /usr/envpools-probe'
    try write_root      'echo x > /envpools-probe'
    try write_var       'mkdir -p {host_marker.parent} && echo x > {host_marker}'
    try write_tmp       'echo x > /tmp/envpools-probe-{os.getpid()}'
    try see_tests       'ls /tests/test.sh'
    try see_verifier    'ls /logs/verifier'
    try see_solution    'ls /solution/solve.sh'
    try network         'python3 -c "import socket; socket.create_connection((\\"127.0.0.1\\", {port}), timeout=2).sendall(b\\"hi\\")"'
    try dns             'python3 -c "import socket; socket.getaddrinfo(\\"example.com\\", 80)"'
    try host_pid        'kill -0 {os.getpid()}'
    echo "uid=$(id -u)"
    echo "pid1=$(cat /proc/1/comm)"
    """


def outcome_lines(events: list[dict[str, object]]) -> dict[str, str]:
    found = {}
    for event in events:
        if event["event"] == "agent":
            text = str(event["data"]["text"])  # type: ignore[index]
            if "=" in text:
                key, _, value = text.partition("=")
                found[key] = value
    return found


def test_agent_is_confined(
    backend: Backend, tmp_path: Path, listener: tuple[int, list[bytes]]
) -> None:
    port, hits = listener
    host_marker = Path(f"/var/tmp/envpools-probe-{os.getpid()}/marker.txt")
    task = make_task(
        tmp_path,
        "probe",
        solve=probe_script(host_marker, port),
        test="""
                     if [ -f /tests/test.sh ]; then echo 1 > /logs/verifier/reward.txt; fi
                     """,
    )
    backend.pool("p", local_task("probe", task))
    rid = backend.rollout("p", "probe", harness="oracle")["rollout_id"]
    events = backend.events(rid)
    result = outcome_lines(events)

    assert result["write_app"] == "yes"
    assert result["write_logs"] == "yes"
    assert result["write_artifacts"] == "yes"
    assert result["write_etc"] == "no"
    assert result["write_usr"] == "no"
    assert result["write_root"] == "no"
    assert result["write_var"] == "no"
    assert result["write_tmp"] == "yes", "a private /tmp for tools"
    assert not host_marker.exists()
    assert not Path(f"/tmp/envpools-probe-{os.getpid()}").exists(), "/tmp is the sandbox's own"
    assert not Path("/etc/envpools-probe").exists()
    assert result["see_tests"] == "no", "tests are bound only in the verifier phase"
    assert result["see_verifier"] == "no"
    assert result["see_solution"] == "yes", "the oracle phase binds /solution"
    assert result["network"] == "no" and hits == [], "no network by default"
    assert result["dns"] == "no"
    assert result["host_pid"] == "no", "own pid namespace"
    assert result["uid"] != "0", "unprivileged inside"

    done = ep.get_rollout(rid, **backend.conn)
    assert done["reward_primary"] == 1.0, "the verifier phase does see /tests"
    trial = backend.data_dir / "trials" / rid
    assert (trial / "workspace" / "agent-was-here").exists()
    assert (trial / "agent" / "probe.txt").exists()
    assert (trial / "artifacts" / "probe.txt").exists()


def test_nop_agent_cannot_see_solution(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "t",
        test="""
        if [ -e /solution ]; then echo 0 > /logs/verifier/reward.txt
        else echo 1 > /logs/verifier/reward.txt; fi
    """,
    )
    backend.pool("p", local_task("t", task))
    done = backend.wait(backend.rollout("p", "t", harness="nop")["rollout_id"])
    assert done["reward_primary"] == 1.0, "/solution is only bound for the oracle"


def test_fallback_driver_rewrites_container_paths(tmp_path: Path) -> None:
    driver, warning = make_driver("process")
    assert isinstance(driver, ProcessDriver)
    assert warning and "without isolation" in warning
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    logs = tmp_path / "agent"
    logs.mkdir()
    script = tmp_path / "solve.sh"
    script.write_text("echo hi > /logs/agent/out.txt\ncd /app && pwd\n")
    from envpools_cli.server.sandbox.drivers import Mount

    spec = SandboxSpec(
        command=["/bin/bash", "/solution/solve.sh"],
        workspace=workspace,
        mounts=[Mount(logs, "/logs/agent", True), Mount(tmp_path, "/solution")],
    )
    lines: list[str] = []
    result = driver.run(spec, timeout=10, cancel=threading.Event(), on_line=lines.append)
    assert result.exit_code == 0, lines
    assert (logs / "out.txt").read_text() == "hi\n"
    assert lines == [str(workspace)]


def test_memory_limit_stops_a_runaway_agent(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "hog",
        toml="[environment]\nmemory_mb = 64\n",
        solve="""
        python3 -c "b = bytearray(200 * 1024 * 1024); print('allocated')" || echo "refused"
        node -e "console.log('node starts')" 2>/dev/null || true
    """,
    )
    backend.pool("p", local_task("hog", task))
    rid = backend.rollout("p", "hog")["rollout_id"]
    texts = [e["data"]["text"] for e in backend.events(rid) if e["event"] == "agent"]
    assert "refused" in texts and "allocated" not in texts
