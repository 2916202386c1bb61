"""Finding 10: a sandboxed agent reaches its provider, and nothing else on the host.

The model (the scripted stub) has the agent probe the host from inside its sandbox: the
backend's own API (``/healthz``), another service listening on the host's loopback,
the same service on the host's other addresses, and the provider itself directly. All
must be unreachable (the sandbox has a network namespace of its own), while the run
itself succeeds: the agent talks to its provider through the rollout's egress gateway.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli import client as ep
from tests.agents.conftest import agents_dir, installed_cli_dir, require_agent
from tests.agents.provider_stub import FIX_COMMAND, ProviderStub
from tests.integration.conftest import EXAMPLE, fast_session, local_task, start_backend

__all__ = ["agents_dir", "installed_cli_dir"]  # fixtures shared with tests/agents

pytestmark = pytest.mark.sandbox


def _host_addresses() -> list[str]:
    """The host's own non-loopback IPv4 addresses (reachable from the host itself)."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this picks the route
            found.add(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(a for a in found if not a.startswith("127."))


@pytest.fixture
def loopback_service() -> Iterator[int]:
    """Another service on the host, listening on every address."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"SECRET-SERVICE-BANNER\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def probe_command(targets: dict[str, tuple[str, int]]) -> str:
    """Python, run by the agent's shell tool: one REACH line per target."""
    script = (
        "import socket,json;"
        f"t={json.dumps(targets)};"
        "r={}\n"
        "for n,(h,p) in t.items():\n"
        " s=socket.socket();s.settimeout(3)\n"
        " try:\n  s.connect((h,p));r[n]='open'\n"
        " except OSError as e:\n  r[n]='closed:'+type(e).__name__\n"
        " s.close()\n"
        "print('REACH '+json.dumps(r,sort_keys=True))"
    )
    return f'python3 -c "{script.replace(chr(34), chr(92) + chr(34))}"'


def test_agent_reaches_its_provider_and_nothing_else(
    agents_dir: Path, driver: str, tmp_path: Path, loopback_service: int
) -> None:
    require_agent("codex")
    key = "sk-hostile-network-0123456789"
    # The container driver: codex comes from the tool tree, mounted read-only into an
    # image that has no Node.js and no agent of its own.
    thread = start_backend(tmp_path / "data", sandbox=driver)
    session = fast_session()
    targets: dict[str, tuple[str, int]] = {
        "backend_healthz": ("127.0.0.1", thread.port),
        "loopback_service": ("127.0.0.1", loopback_service),
    }
    for n, address in enumerate(_host_addresses()):
        targets[f"host_address_{n}"] = (address, loopback_service)
    stub = ProviderStub(command="", expected_key=key).start()
    targets["provider_directly"] = ("127.0.0.1", stub.port)
    stub.command = f"{FIX_COMMAND}; {probe_command(targets)}"
    try:
        _, api_key = thread.create_key()
        conn = {"backend_base": thread.url, "api_key": api_key, "session": session}
        # The test's own view: every target is reachable from the host.
        for host, port in targets.values():
            socket.create_connection((host, port), timeout=3).close()
        for name, value in (("OPENAI_API_KEY", key), ("OPENAI_BASE_URL", stub.url + "/v1")):
            ep.store_credential(
                credential_name=name, credential_type=name, credential_value=value, **conn
            )
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [local_task("fix", EXAMPLE).model_dump()],
            },
            **conn,
        )
        request = {
            "task_ref": {"dataset": "d", "task_id": "fix"},
            "agent": {"harness": "codex"},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {"agent_sec": 180},
        }
        rid = ep.create_rollout(request=request, **conn)["rollout_id"]
        done = ep.RolloutHandle(rid, **conn).wait(timeout=240)
        events = list(ep.stream_rollout_events(rid, **conn))
    finally:
        session.close()
        thread.stop()
        stub.stop()

    assert done["status"] == "succeeded", done
    assert done["reward_primary"] == 1.0, "the provider was reached through the gateway"
    outputs = " ".join(str(e["data"].get("output", "")) for e in events if e["event"] == "agent")
    line = next(part for part in outputs.split("\n") if part.startswith("REACH "))
    reached = json.loads(line.removeprefix("REACH "))
    assert set(reached) == set(targets)
    assert all(value.startswith("closed:") for value in reached.values()), reached
    assert "SECRET-SERVICE-BANNER" not in json.dumps(events)
