"""The backend gives freed memory back after rollouts: at most once a second, always when idle."""

from __future__ import annotations

import time

import pytest

from envpools_cli.server.scheduling import memory


def test_trims_when_idle_and_at_most_once_a_second_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    clock = [1000.0]

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    monkeypatch.setattr(memory, "_trim", [trim])
    monkeypatch.setattr(memory, "_last", 0.0)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    memory.release_freed_memory(idle=False)
    memory.release_freed_memory(idle=False)  # 0 s later: skipped
    assert calls == [0]
    memory.release_freed_memory(idle=True)  # the last rollout ended: always
    assert calls == [0, 0]
    clock[0] += memory.MIN_INTERVAL_SEC
    memory.release_freed_memory(idle=False)
    assert calls == [0, 0, 0]


def test_the_real_trim_runs_here() -> None:
    found = memory._malloc_trim()
    assert found is not None, "this is glibc: malloc_trim must be found"
    assert found(0) in (0, 1)
