"""Finding 7 (LOW): no default limits: 300 of 300 processes spawned, 4 GiB allocated,
``memory_mb`` bypassed through an unsized /tmp, 50 MB of output became 52k events."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.output.capabilities import capability_sections

from .conftest import Backend, hostile_run, make_task, needs_bwrap

pytestmark = needs_bwrap

FORK_STORM = r"""
python3 - <<'PY'
import os, time
children = 0
for _ in range(1500):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    children += 1
print(f"children={children}", flush=True)
PY
"""


def test_a_fork_storm_is_bounded_by_default(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "fork-storm", solve=FORK_STORM)
    run = hostile_run(backend, task, timeout=100)
    children = int(run.values()["children"])
    assert children < 1500, "every fork succeeded"
    assert children <= 512, f"{children} processes: more than the default limit"
    assert run.doc["status"] == "succeeded"


def test_a_task_can_lower_its_process_limit(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path, "fork-storm-low", toml="[environment]\nprocesses = 40\n", solve=FORK_STORM
    )
    run = hostile_run(backend, task, timeout=100)
    assert int(run.values()["children"]) < 40


def test_memory_is_limited_by_default(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "hog",
        solve="""
        python3 -c "b = bytearray(9 * 1024 ** 3); print('allocated=9GiB')" 2>/dev/null \
            || echo "allocated=refused"
        """,
    )
    run = hostile_run(backend, task)
    assert run.values()["allocated"] == "refused"
    assert run.doc["status"] == "succeeded"


def test_tmp_and_shm_cannot_bypass_the_memory_limit(
    backend: Backend, driver: str, tmp_path: Path
) -> None:
    task = make_task(
        tmp_path,
        "tmpfs-fill",
        toml="[environment]\nmemory_mb = 64\n",
        solve="""
        echo x > /dev/hostile 2>/dev/null && echo "dev_writable=yes" || echo "dev_writable=no"
        dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>/dev/null
        echo "tmp_mb=$(( $(stat -c %s /tmp/fill) / 1048576 ))"
        dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>/dev/null
        echo "shm_mb=$(( $(stat -c %s /dev/shm/fill) / 1048576 ))"
        """,
    )
    run = hostile_run(backend, task)
    values = run.values()
    assert values["dev_writable"] == "no"
    if "tmp_mb" not in values:
        # tmpfs pages are charged to the sandbox's memory cgroup (a container's, or the one
        # the backend makes for bwrap): filling /tmp up to memory_mb gets the task killed
        # by the limit instead of holding more.
        notes = [str(e["data"].get("message", "")) for e in run.events]
        killed = (run.doc.get("error") or {}).get("code") == "memory_limit"
        assert killed or any("exited with code 137" in note for note in notes), notes
        return
    assert int(values["tmp_mb"]) <= 64, values
    assert int(values["shm_mb"]) <= 64, values


def test_an_output_flood_is_capped_with_a_truncated_event(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "flood",
        solve="head -c 20000000 /dev/zero | tr '\\0' x | fold -w 1000; echo after-flood",
    )
    run = hostile_run(backend, task, timeout=110)
    agent = [e for e in run.events if e["event"] == "agent"]
    truncated = [e for e in agent if e["data"].get("kind") == "truncated"]
    assert len(truncated) == 1, "one clear truncated event"
    assert len(agent) <= 8 * 1024 * 1024 // 1000 + 2, f"{len(agent)} agent events"
    assert agent[-1]["data"].get("kind") == "truncated"
    assert run.doc["status"] == "succeeded"
    database = backend.data_dir / "envpools.db"
    size = sum(p.stat().st_size for p in backend.data_dir.glob("envpools.db*"))
    assert database.exists() and size < 40 * 1024 * 1024, f"database grew to {size} bytes"
    log = backend.data_dir / "trials" / run.rollout_id / "agent" / "oracle.txt"
    assert log.stat().st_size <= 8 * 1024 * 1024 + 2000


def test_disk_use_is_bounded(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "disk-fill",
        toml="[environment]\nstorage_mb = 40\n",
        solve="""
        dd if=/dev/zero of=/app/fill bs=1M count=150 2>/dev/null
        sleep 3
        echo wrote=done
        """,
    )
    run = hostile_run(backend, task)
    assert run.doc["status"] == "failed"
    assert run.doc["error"]["code"] == "storage_limit"
    assert "40 MB" in run.doc["error"]["message"]


def test_file_size_is_limited(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "big-file",
        toml="[environment]\nfile_mb = 20\n",
        solve="""
        dd if=/dev/zero of=/app/big bs=1M count=60 2>/dev/null
        echo "big_mb=$(( $(stat -c %s /app/big) / 1048576 ))"
        """,
    )
    run = hostile_run(backend, task)
    assert int(run.values()["big_mb"]) <= 20
    limits = [e for e in run.events if "file_mb" in str(e["data"].get("message", ""))]
    assert not limits, "20 MB is within the backend's maximum: nothing to lower"


def test_asking_above_the_backend_maximum_is_lowered_and_said(
    backend_factory: object, tmp_path: Path
) -> None:
    import dataclasses

    from envpools_cli.server.sandbox.limits import DEFAULT_MAXIMA

    maxima = dataclasses.replace(DEFAULT_MAXIMA, memory_mb=256)
    backend: Backend = backend_factory(limit_maxima=maxima)  # type: ignore[operator]
    task = make_task(
        tmp_path,
        "greedy",
        toml="[environment]\nmemory_mb = 1000\n",  # the machine has it; the backend's max not
        solve="""
        python3 -c "b = bytearray(1200 * 1024 ** 2); print('allocated=1200MiB')" 2>/dev/null \
            || echo "allocated=refused"
        """,
    )
    run = hostile_run(backend, task)
    assert run.values()["allocated"] == "refused"
    notes = [str(e["data"].get("message")) for e in run.events if e["event"] == "lifecycle"]
    assert any("memory_mb 1000 " in n and "256" in n for n in notes), notes
    assert ep.get_rollout(run.rollout_id, **backend.conn)["status"] == "succeeded"


def test_deep_folders_cannot_hide_disk_use(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "deep-fill",
        toml="[environment]\nstorage_mb = 40\n",
        solve="""
        deep=/app/$(printf 'd/%.0s' $(seq 300))
        mkdir -p "$deep" && dd if=/dev/zero of="$deep/fill" bs=1M count=60 2>/dev/null
        sleep 3
        """,
    )
    run = hostile_run(backend, task)
    assert run.doc["status"] == "failed"
    assert run.doc["error"]["code"] == "storage_limit"


def test_a_sandbox_over_its_memory_limit_is_killed_and_said(
    backend: Backend, driver: str, tmp_path: Path
) -> None:
    """Resident memory is what is limited (a cgroup per sandbox): the command that goes
    over is killed and the rollout fails with ``memory_limit``."""
    if driver == "container":
        pytest.skip("the container engine removes the container (--rm) with its OOM count")
    if ep.get_capabilities(**backend.conn)["sandbox"]["memory_limit"]["method"] != "cgroup":
        pytest.skip("no cgroup here (a backend not running as root): a data-size limit")
    task = make_task(
        tmp_path,
        "resident-hog",
        toml="[environment]\nmemory_mb = 128\n",
        solve="""
        echo "started=yes"
        python3 -c "b = bytearray(400 * 1024 ** 2); print('allocated=400MiB')"
        """,
    )
    run = hostile_run(backend, task)
    assert run.values()["started"] == "yes" and "allocated" not in run.values()
    assert run.doc["status"] == "failed", run.doc
    assert run.doc["error"]["code"] == "memory_limit", run.doc["error"]
    message = run.doc["error"]["message"]
    assert "memory limit of 128 MB" in message and "memory_mb" in message
    assert run.doc["error"]["oom_kills"] >= 1


def test_address_space_is_not_memory(backend: Backend, tmp_path: Path) -> None:
    """A JIT runtime maps far more than it uses (Bun, Node): 768 MiB mapped writable but
    never touched runs under a 256 MB limit (a data-size rlimit of 256 MB killed it)."""
    task = make_task(
        tmp_path,
        "reserver",
        toml="[environment]\nmemory_mb = 256\n",
        solve="""
        python3 -c "
import mmap
m = mmap.mmap(-1, 768 * 1024 ** 2, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m[:1024 * 1024] = bytes(1024 * 1024)
print('reserved=768MiB')
"
        """,
    )
    run = hostile_run(backend, task)
    assert run.values().get("reserved") == "768MiB", run.events[-5:]
    assert run.doc["status"] == "succeeded", run.doc


def test_status_says_how_memory_is_limited(backend: Backend, driver: str) -> None:
    memory = ep.get_capabilities(**backend.conn)["sandbox"]["memory_limit"]
    if driver == "container":
        assert memory["method"] == "container", memory
    elif os.geteuid() == 0:  # as in CI: the backend makes a cgroup per sandbox
        assert memory["method"] == "cgroup", memory
    else:  # no cgroup: the data-size limit stands in, and says why
        assert memory["method"] == "rlimit" and "RLIMIT_DATA" in memory["how"], memory
    if memory["method"] != "rlimit":
        assert "resident memory" in memory["how"]
    # What `envpools capabilities get` shows people (rendered here: an unprivileged run of
    # this suite cannot start the CLI's interpreter).
    caps = ep.get_capabilities(**backend.conn)
    rows = dict(capability_sections(caps)[0].rows)
    assert rows["Memory limit"] == memory["how"], rows
