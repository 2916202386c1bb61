"""The product page's examples, run verbatim against the local backend on a real socket.

The Quick Start imports ``synth_ai.sdk.environment_pools``; here that name is our client
package (it plays that part, see ``envpools_cli/client/__init__.py``). Only the API key
literal and the backend URL (``SYNTH_BACKEND_URL``, which the page's code reads) differ.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep

from .conftest import Backend, local_task, make_task

# A copy of the product page (``../shared/reference/PRODUCT_PAGE.txt`` in the team's tree),
# kept with the tests so that CI's clean clone has it too.
PAGE = Path(__file__).with_name("PRODUCT_PAGE.txt")
SHARED_PAGE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "PRODUCT_PAGE.txt"

# The page's Quick Start with its indentation restored (the page text lost it); the test
# checks that, indentation aside, this is the page's text line for line.
QUICK_START = """\
from synth_ai.sdk.environment_pools import (
    EnvironmentPoolsClient,
    AgentSpec,
    PoolTask,
)
client = EnvironmentPoolsClient(api_key="sk_...")
# Create a pool
pool = client.pools.create(request={
    "pool_id": "my-pool",
    "pool_type": "openenv",
    "concurrency": 4,
})
# Add a task
task = PoolTask.from_openenv("task-1", "https://my-task-app.example.com")
client.pools.tasks.create(pool["pool_id"], request=task)
# Launch a rollout with AgentSpec preset
handle = client.rollouts.create({
    "task_ref": {"dataset": "my-dataset", "task_id": "task-1"},
    "agent": AgentSpec.claude_code().model_dump(exclude_none=True),
    "task_app_url": "https://my-task-app.example.com",
    "timeouts": {"agent_sec": 300},
    "pool_id": "my-pool",
})
# Stream events
for event in handle.events():
    print(event)
# Get usage
print(handle.usage())
"""


def page_section(start: str, end: str) -> list[str]:
    lines = PAGE.read_text().splitlines()
    first = lines.index(start) + 1
    last = lines.index(end, first)
    return lines[first:last]


@pytest.fixture
def synth_ai_is_us(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import synth_ai.sdk.environment_pools`` resolves to this project's client."""
    package = types.ModuleType("synth_ai")
    sdk = types.ModuleType("synth_ai.sdk")
    package.sdk = sdk  # type: ignore[attr-defined]
    sdk.environment_pools = ep  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "synth_ai", package)
    monkeypatch.setitem(sys.modules, "synth_ai.sdk", sdk)
    monkeypatch.setitem(sys.modules, "synth_ai.sdk.environment_pools", ep)


@pytest.mark.skipif(not SHARED_PAGE.is_file(), reason="no shared reference tree here")
def test_page_copy_is_current() -> None:
    assert PAGE.read_text() == SHARED_PAGE.read_text()


def test_quick_start_is_the_page_text() -> None:
    ours = [line.strip() for line in QUICK_START.splitlines()]
    assert ours == [line.strip() for line in page_section("Quick Start", "Key Types")]


def test_quick_start_runs_verbatim(
    backend: Backend,
    synth_ai_is_us: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ENVPOOLS_API_URL", "ENVPOOLS_API_KEY", "SYNTH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNTH_BACKEND_URL", backend.url)
    assert QUICK_START.count('"sk_..."') == 1
    source = QUICK_START.replace('"sk_..."', repr(backend.key))
    namespace: dict[str, object] = {"__name__": "quick_start"}
    exec(compile(source, "PRODUCT_PAGE.txt#quick-start", "exec"), namespace)

    printed = capsys.readouterr().out.splitlines()
    handle = namespace["handle"]
    assert isinstance(handle, ep.RolloutHandle)
    rollout = ep.get_rollout(handle.rollout_id, **backend.conn)
    # The local backend runs Harbor task directories, not OpenEnv task apps: the page's
    # rollout is accepted, queued, started, then ends with an error that says so.
    assert rollout["status"] == "error"
    assert rollout["error"]["code"] == "backend_unsupported"
    assert rollout["pool_id"] == "my-pool"
    pool = ep.get_pool("my-pool", **backend.conn)
    assert [t["task_id"] for t in ep.list_pool_tasks("my-pool", **backend.conn)] == ["task-1"]
    assert pool["pool_type"] == "openenv"
    # every event printed once, then the usage snapshot
    events = backend.events(handle.rollout_id)
    assert len(printed) == len(events) + 1
    assert printed[:-1] == [str(event) for event in events]
    assert rollout["rollout_id"] in printed[-1]


# --- the SDK 0.9.6 spellings, next to the page's ------------------------------------------


class _DropFirstEventsConnection(httpx.BaseTransport):
    """The real network, except that the first event stream dies before its first byte."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events") and not self.dropped:
            self.dropped += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def finished(backend: Backend, tmp_path: Path) -> str:
    """A finished rollout of a local task that leaves an artifact."""
    task = make_task(tmp_path, "t1", solve="mkdir -p /logs/agent && echo hi > /logs/agent/note.txt")
    backend.pool("p", local_task("t1", task))
    rollout_id = str(backend.rollout("p", "t1")["rollout_id"])
    backend.wait(rollout_id)
    return rollout_id


def test_handle_events_reconnects_by_default(backend: Backend, finished: str) -> None:
    transport = _DropFirstEventsConnection()
    session = ep.HTTPSession(transport=transport, sleep=lambda _: None)
    with ep.EnvironmentPoolsClient(
        api_key=backend.key, backend_base=backend.url, skip_plan_check=True, session=session
    ) as client:
        got = list(client.rollout(finished).events())
    assert transport.dropped == 1, "the first connection was cut"
    assert [e["seq"] for e in got] == [e["seq"] for e in backend.events(finished)]
    assert got[-1]["event"] == "lifecycle"
    # The module function keeps the page's documented default: no reconnect.
    transport.dropped = 0
    with pytest.raises(ep.TransportError):
        list(
            ep.stream_rollout_events(
                finished, backend_base=backend.url, api_key=backend.key, session=session
            )
        )


def test_fetch_artifact_takes_artifact_path_and_path(backend: Backend, finished: str) -> None:
    manifest = ep.list_rollout_artifacts(finished, **backend.conn)
    paths = [entry["path"] for entry in manifest["artifacts"]]
    assert paths, manifest
    first = paths[0]
    positional = ep.fetch_artifact(finished, first, **backend.conn)
    assert ep.fetch_artifact(finished, artifact_path=first, **backend.conn) == positional
    assert ep.fetch_artifact(finished, path=first, **backend.conn) == positional  # SDK 0.9.6
    handle = ep.RolloutHandle(finished, **backend.conn)
    assert handle.download(first) == positional
    with pytest.raises(TypeError):
        ep.fetch_artifact(finished, **backend.conn)
    with pytest.raises(TypeError):
        ep.fetch_artifact(finished, first, path="other", **backend.conn)


def test_task_factories_take_container_url(backend: Backend) -> None:
    url = "https://my-task-app.example.com"
    openenv = ep.PoolTask.from_openenv("o1", container_url=url)
    browser = ep.PoolTask.from_browser("b1", container_url=url, profile="linkedin")
    assert openenv == ep.PoolTask.from_openenv("o1", url)
    assert browser == ep.PoolTask.from_browser("b1", url, profile="linkedin")
    assert openenv.openenv_deployment == {"task_app_url": url}
    assert browser.browser == {"task_app_url": url, "profile": "linkedin"}
    with pytest.raises(ValueError):
        ep.PoolTask.from_openenv("o1", url, container_url="https://else.example.com")
    with pytest.raises(TypeError):
        ep.PoolTask.from_browser("b1")
    client = ep.EnvironmentPoolsClient(**_client_conn(backend), skip_plan_check=True)
    client.pools.create(request={"pool_id": "oe", "pool_type": "openenv"})
    client.pools.tasks.create("oe", request=openenv)
    client.pools.tasks.create("oe", request=browser)
    stored = {t["task_id"]: t for t in client.pools.tasks.list("oe")}
    assert stored["o1"]["openenv_deployment"] == {"task_app_url": url}
    assert stored["b1"]["browser"]["task_app_url"] == url


def test_container_names_read_back(backend: Backend) -> None:
    url = "https://my-task-app.example.com"
    request = ep.RolloutRequestV1(
        task_ref={"dataset": "d", "task_id": "t"},
        agent={"harness": "oracle"},
        container_url=url,
        timeouts={},
        pool_id="p",
    )
    assert request.container_url == request.task_app_url == url
    assert request["container_url"] == url and request.container_id is None
    by_id = ep.RolloutRequestV1.model_validate(
        {
            "task_ref": {"dataset": "d", "task_id": "t"},
            "agent": {"harness": "oracle"},
            "container_id": "app-1",
            "timeouts": {},
            "pool_id": "p",
        }
    )
    assert by_id.container_id == by_id.task_app_id == "app-1"
    pool = ep.PoolResponse.from_dict({"id": "p1", "container_url": url, "container_id": "c1"})
    assert (pool.container_url, pool.container_id) == (url, "c1")
    assert (pool["pool_id"], pool["container_url"], pool.get("container_id")) == ("p1", url, "c1")
    # Against the backend: the SDK's spelling goes out as the seed's and is accepted.
    backend.pool("p")
    created = ep.create_rollout(request=request, dry_run=True, **backend.conn)
    assert created.get("valid", True) is not False, created


def _client_conn(backend: Backend) -> dict[str, object]:
    return {"api_key": backend.key, "backend_base": backend.url, "session": backend.session}
