"""The Ray executor against a real Ray cluster on this machine (issue 20).

A head and two worker nodes (``ray start``, ports of their own, one CPU and two sandbox
slots each) in a private network namespace; the backend is ``envpools local serve
--executor ray`` in a process of its own. Tests run in file order: losing a node comes
last. Every process the module starts is stopped at its end, and checked.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.ray_cluster import Cluster, namespaces_available, private_network, start_cluster
from envpools_cli import client as ep
from envpools_cli.server.state.store import Store

BACKEND_PORT = 18000
_unavailable = namespaces_available()
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.timeout(900),  # the first test also starts the cluster
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs envpools[ray]"),
    pytest.mark.skipif(_unavailable is not None, reason=str(_unavailable)),
]


@dataclass
class RayBackend:
    url: str
    key: str
    cluster: Cluster
    root: Path
    process: subprocess.Popen[bytes]

    def new_key(self, plan: str) -> str:
        """A key of an organisation of its own (nothing of the other tests in it)."""
        store = Store(self.root / "data" / "envpools.db")
        try:
            org = store.create_org(f"org-{secrets.token_hex(3)}", plan)
            return str(store.create_key(org.org_id))
        finally:
            store.close()

    @property
    def conn(self) -> dict[str, Any]:
        return {"backend_base": self.url, "api_key": self.key}

    def pool(self, pool_id: str, task: Path, concurrency: int = 20) -> None:
        body = {
            "pool_id": pool_id,
            "pool_type": "sandbox",
            "concurrency": concurrency,
            "tasks": [ep.PoolTask.from_local(task.name, str(task)).model_dump()],
        }
        ep.create_pool(request=body, **self.conn)

    def request(self, pool_id: str, task_id: str) -> dict[str, Any]:
        return {
            "task_ref": {"dataset": "cluster", "task_id": task_id},
            "agent": {"harness": "oracle"},
            "pool_id": pool_id,
            "task_app_id": "",
            "timeouts": {},
        }

    def create(self, pool_id: str, task_id: str) -> str:
        return str(
            ep.create_rollout(request=self.request(pool_id, task_id), **self.conn)["rollout_id"]
        )

    def get(self, rollout_id: str) -> dict[str, Any]:
        return ep.get_rollout(rollout_id, **self.conn)

    def wait(self, rollout_id: str, *statuses: str, timeout: float = 180) -> dict[str, Any]:
        wanted = set(statuses) or set(ep.TERMINAL_STATUSES)
        deadline = time.monotonic() + timeout
        while True:
            doc = self.get(rollout_id)
            if doc["status"] in wanted:
                return doc
            assert time.monotonic() < deadline, f"{rollout_id} stayed {doc['status']}"
            time.sleep(0.1)

    def events(self, rollout_id: str) -> list[dict[str, Any]]:
        """The stream of a finished rollout (it ends with the terminal event)."""
        return list(ep.stream_rollout_events(rollout_id, auto_reconnect=True, **self.conn))

    def events_so_far(self, rollout_id: str) -> list[dict[str, Any]]:
        """The stored events of a rollout that may still run (without waiting for more)."""
        bundle = ep.get_rollout_support_bundle(rollout_id, **self.conn)
        return list(bundle["events"])


def _task(root: Path, name: str, solve: str) -> Path:
    task = root / "tasks" / name
    (task / "environment").mkdir(parents=True)
    (task / "solution").mkdir()
    (task / "tests").mkdir()
    (task / "instruction.md").write_text(f"{name}\n")
    (task / "task.toml").write_text('version = "1.0"\n')
    (task / "environment" / "Dockerfile").write_text("FROM debian\nWORKDIR /app\n")
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\n" + textwrap.dedent(solve))
    (task / "tests" / "test.sh").write_text("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n")
    return task


def _home(root: Path) -> dict[str, str]:
    home = root / "home"
    for sub in ("config", "data", "state", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ENVPOOLS_KEYRING": "file",
    }


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            response = httpx.get(f"{url}/healthz", timeout=2)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                if body["scheduling"]["runs_at_once"]:  # the workers are known
                    return body
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the backend did not come up:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def ray_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayBackend]:
    root = tmp_path_factory.mktemp("ray-backend")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENVPOOLS_", "RAY_"))},
        **_home(root),
        "ENVPOOLS_SANDBOX": "bwrap",
    }
    with private_network():
        cluster = start_cluster(2, Path(env["HOME"]))
        log = root / "backend.log"
        data = root / "data"
        command = [
            sys.executable,
            "-m",
            "envpools_cli",
            "local",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(BACKEND_PORT),
            "--data-dir",
            str(data),
            "--executor",
            "ray",
            "--ray-address",
            cluster.address,
            "--log-level",
            "warning",
        ]
        with log.open("wb") as out:
            backend = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{BACKEND_PORT}"
        try:
            _wait_healthy(url, backend, log)
            store = Store(data / "envpools.db")
            try:
                key = store.create_key(store.create_org("cluster", "pro").org_id)
            finally:
                store.close()
            yield RayBackend(url, key, cluster, root, backend)
        finally:
            backend.send_signal(signal.SIGTERM)
            try:
                backend.wait(30)
            except subprocess.TimeoutExpired:
                backend.kill()
                backend.wait(10)
            leftovers = cluster.stop()
    assert not leftovers, f"cluster processes left running: {leftovers}"


def test_twenty_oracle_rollouts_spread_over_both_workers(
    ray_backend: RayBackend,
) -> None:
    backend = ray_backend
    caps = ep.get_capabilities(**backend.conn)["scheduling"]
    assert caps["executor"] == "ray"
    workers = {n["node_id"]: n for n in caps["nodes"] if n["resources"]["sandbox_slot"]}
    assert len(workers) == 2 and caps["runs_at_once"] == 4, caps
    task = _task(backend.root, "quick", "echo 42 > /app/answer.txt\n")
    backend.pool("spread", task)
    batch = ep.create_rollouts_batch(
        requests=[backend.request("spread", "quick")] * 20, **backend.conn
    )
    assert batch["errors"] == []
    docs = [backend.wait(r["rollout_id"], timeout=300) for r in batch["rollouts"]]
    assert [d["status"] for d in docs] == ["succeeded"] * 20, [d.get("error") for d in docs]
    nodes = {d["node"]["node_id"] for d in docs}
    assert nodes == set(workers), "spread over both workers, each rollout's node recorded"
    # What the node sent arrived: the events, in order, and the artifacts at the end.
    first = docs[0]["rollout_id"]
    events = backend.events(first)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["status"] == "succeeded"
    fetched = ep.fetch_artifact(first, "verifier/reward.txt", **backend.conn)
    assert fetched.strip() == b"1"
    listed = ep.list_rollout_artifacts(first, **backend.conn)["artifacts"]
    paths = {a["path"] for a in listed}
    assert {"workspace.diff", "result.json", "verifier/reward.txt"} <= paths


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in command and "pytest" not in command:
                found.append(command)
    return found


def test_cancel_on_a_worker_ends_it_within_seconds_and_leaves_no_sandbox(
    ray_backend: RayBackend,
) -> None:
    backend = ray_backend
    marker = f"600.{secrets.randbelow(10**9):09d}"  # a sleep only this rollout runs
    task = _task(backend.root, "long-cancel", f"echo started; sleep {marker}\n")
    backend.pool("cancel", task)
    rid = backend.create("cancel", "long-cancel")
    doc = backend.wait(rid, "running")
    assert doc["node"]["node_id"], "its node is recorded"
    deadline = time.monotonic() + 60
    while not _processes_with(marker):
        assert time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.1)
    started = time.monotonic()
    ep.cancel_rollout(rid, **backend.conn)
    done = backend.wait(rid, "cancelled", timeout=5)
    assert time.monotonic() - started < 5, done
    while _processes_with(marker):
        assert time.monotonic() - started < 5, _processes_with(marker)
        time.sleep(0.1)
    events = backend.events(rid)
    assert events[-1]["data"]["status"] == "cancelled"
    assert any(e["event"] == "agent" and "started" in str(e["data"]) for e in events)


def test_the_official_sdk_drives_the_ray_backed_backend(ray_backend: RayBackend) -> None:
    from tests.integration.test_official_sdk import drive_with_official_sdk

    backend = ray_backend
    drive_with_official_sdk(backend.url, backend.new_key("pro"), backend.new_key("free"))


def test_a_node_without_the_agent_cli_fails_the_trial_clearly(ray_backend: RayBackend) -> None:
    backend = ray_backend
    backend.pool("agents", _task(backend.root, "needs-codex", "true\n"))
    request = {**backend.request("agents", "needs-codex"), "agent": {"harness": "codex"}}
    rid = ep.create_rollout(request=request, **backend.conn)["rollout_id"]
    doc = backend.wait(rid)
    assert doc["status"] == "error" and doc["error"]["code"] == "harness_unavailable", doc
    message = doc["error"]["message"]
    assert f"cannot run on node {doc['node']['name']}" in message, message
    assert "envpools agents install codex" in message, message


def test_a_lost_node_ends_its_rollouts_node_lost_and_the_queue_moves_to_the_other(
    ray_backend: RayBackend,
) -> None:
    backend = ray_backend
    ticking = "for i in $(seq 1 1200); do echo tick $i; sleep 0.5; done\n"
    backend.pool("lose", _task(backend.root, "ticking", ticking))
    backend.pool("after", _task(backend.root, "after", "echo 42 > /app/answer.txt\n"))
    long = [backend.create("lose", "ticking") for _ in range(4)]  # every slot of both
    running = {rid: backend.wait(rid, "running") for rid in long}
    queued = [backend.create("after", "after") for _ in range(2)]
    time.sleep(1.5)  # a few ticks each
    assert {backend.get(rid)["status"] for rid in queued} == {"queued"}
    assert backend.get(queued[0])["waiting"]["code"] == "sandbox_slots"
    status = ep.get_queue_status(**backend.conn)
    on_nodes = next(p for p in status["pools"] if p["pool_id"] == "lose")["running_on"]
    assert sum(on_nodes.values()) == 4 and len(on_nodes) == 2, on_nodes
    metrics = ep.get_pool_metrics("lose", **backend.conn)
    assert metrics["running_on"] == on_nodes and metrics["executor"] == "ray"

    victim_id = running[long[0]]["node"]["node_id"]
    victims = [rid for rid, doc in running.items() if doc["node"]["node_id"] == victim_id]
    survivors = [rid for rid in long if rid not in victims]
    ticks_before = {rid: _ticks(backend.events_so_far(rid)) for rid in victims}
    victim = next(
        name
        for name, node in backend.cluster.nodes.items()
        if f":{node.ports[0]}" in running[long[0]]["node"]["address"]
    )
    backend.cluster.kill_worker(victim)

    for rid in victims:
        doc = backend.wait(rid, "error", timeout=120)
        assert doc["error"]["code"] == "node_lost", doc["error"]
        events = backend.events(rid)
        assert _ticks(events) >= ticks_before[rid] > 0, "every event received is kept"
        assert events[-1]["data"]["error"]["code"] == "node_lost"
    assert {backend.get(rid)["status"] for rid in survivors} == {"running"}
    deadline = time.monotonic() + 60  # the cluster's health check: seconds
    while True:
        nodes = ep.get_capabilities(**backend.conn)["scheduling"]["nodes"]
        if not next(n for n in nodes if n["node_id"] == victim_id)["alive"]:
            break
        assert time.monotonic() < deadline, "the lost node is still shown alive"
        time.sleep(0.5)

    for rid in survivors:  # free the other node's slots for the queue
        ep.cancel_rollout(rid, **backend.conn)
    for rid in queued:
        doc = backend.wait(rid, timeout=180)
        assert doc["status"] == "succeeded", doc.get("error")
        assert doc["node"]["node_id"] != victim_id, "ran on the node that is left"


def _ticks(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["event"] == "agent" and "tick" in str(e["data"]))


def test_stopping_the_backend_ends_its_running_rollouts_and_their_sandboxes(
    ray_backend: RayBackend,
) -> None:
    """Last: the backend goes. What ran ends backend_restarted (as a restart says) and
    the sandboxes on the nodes stop."""
    backend = ray_backend
    marker = f"600.{secrets.randbelow(10**9):09d}"
    backend.pool("stop", _task(backend.root, "long-stop", f"sleep {marker}\n"))
    rid = backend.create("stop", "long-stop")
    backend.wait(rid, "running")
    deadline = time.monotonic() + 60
    while not _processes_with(marker):
        assert time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.1)
    backend.process.send_signal(signal.SIGTERM)
    assert backend.process.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done
    store = Store(backend.root / "data" / "envpools.db")
    try:
        doc = store.get_rollout(rid)
    finally:
        store.close()
    assert doc is not None and doc["status"] == "error", doc
    assert doc["error"]["code"] == "backend_restarted"
    deadline = time.monotonic() + 15
    while _processes_with(marker):
        assert time.monotonic() < deadline, _processes_with(marker)
        time.sleep(0.2)
