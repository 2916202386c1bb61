"""Reading cgroup mounts and pressure, judging load, and agents' reservations (no kernel)."""

from __future__ import annotations

from envpools_cli.server.sandbox.cgroups import Load, _mounts, _own_paths, _pressure_total
from envpools_cli.server.sandbox.drivers import RunResult
from envpools_cli.server.scheduling.admission import reservation_for

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
OWN = "4:memory:/process_api/abc\n2:cpuacct:/\n0::/\n"


def test_hybrid_mounts_and_own_cgroups_are_read() -> None:
    mounts = {(kind, point): options for kind, point, _, options in _mounts(HYBRID)}
    assert "memory" in mounts[("cgroup", "/sys/fs/cgroup/memory")]
    assert ("cgroup2", "/sys/fs/cgroup/unified") in mounts
    assert ("tmpfs", "/sys/fs/cgroup") not in mounts
    assert _own_paths(OWN) == {"memory": "/process_api/abc", "cpuacct": "/", "": "/"}


def test_pressure_total_is_the_some_line() -> None:
    text = "some avg10=1.00 avg60=2.00 avg300=3.00 total=123456\nfull avg10=0 total=99\n"
    assert _pressure_total(text) == 123456
    assert _pressure_total("") is None and _pressure_total(None) is None


def _timed_out(load: Load | None) -> RunResult:
    return RunResult(None, True, False, 10.0, load=load)


def test_under_load_needs_long_waits_for_cpu_it_did_not_get() -> None:
    assert _timed_out(Load(0.6, 0.2, own=True)).under_load  # starved
    assert not _timed_out(Load(0.6, 1.8, own=True)).under_load  # it had the machine
    assert not _timed_out(Load(0.05, 0.0, own=True)).under_load  # it just waited (a hang)
    assert _timed_out(Load(0.9, None, own=False)).under_load  # machine-wide, saturated
    assert not _timed_out(Load(0.5, None, own=False)).under_load
    assert not _timed_out(None).under_load


def test_memory_exceeded_only_when_the_command_died() -> None:
    killed = RunResult(137, False, False, 1.0, oom_kills=1)
    survived = RunResult(0, False, False, 1.0, oom_kills=2)
    stopped = RunResult(None, True, False, 1.0, oom_kills=1)
    assert killed.memory_exceeded
    assert not survived.memory_exceeded and not stopped.memory_exceeded


def test_an_agents_needs_are_a_floor_under_the_tasks_ask() -> None:
    harbor_task = {"cpus": 1, "memory_mb": 2048}
    reserved, asked = reservation_for(
        harbor_task, max_memory_mb=16384, agent_cpus=4.0, agent_memory_mb=1024
    )
    assert (reserved.cpus, reserved.memory_mb, asked) == (4.0, 2048, 2048)
    reserved, asked = reservation_for(None, max_memory_mb=16384, agent_memory_mb=1024)
    assert (reserved.cpus, reserved.memory_mb, asked) == (1.0, 1024, None)
    big, _ = reservation_for({"cpus": 8}, max_memory_mb=512, agent_cpus=4.0, agent_memory_mb=1024)
    assert (big.cpus, big.memory_mb) == (8.0, 512)
