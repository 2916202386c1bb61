"""The product page's examples, run verbatim against the local backend on a real socket.

The Quick Start imports ``synth_ai.sdk.environment_pools``; here that name is our client
package (it plays that part, see ``envpools_cli/client/__init__.py``). Only the API key
literal and the backend URL (``SYNTH_BACKEND_URL``, which the page's code reads) differ.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from envpools_cli import client as ep

from .conftest import Backend

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
