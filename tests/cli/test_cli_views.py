"""The command line's second pass: statuses, tables, usage checks, output shapes, id prefixes.

Everything runs against the real local backend on port 0.
"""

from __future__ import annotations

import pytest

from envpools_cli.models import TERMINAL_STATUSES, RolloutStatus

from .conftest import CLI, EXAMPLE, Local


@pytest.fixture
def paused(cli: CLI, backend: Local) -> str:
    """A pool that never starts anything: its rollouts stay queued until cancelled."""
    assert cli("pools", "create", "paused", "--local", str(EXAMPLE), "--concurrency", "0").code == 0
    return "paused"


def queue_one(cli: CLI, pool: str, *extra: str) -> str:
    result = cli(
        "rollouts",
        "create",
        "--agent",
        "oracle",
        "--task",
        "d/fix-failing-test",
        "--pool",
        pool,
        "-q",
        *extra,
    )
    assert result.code == 0, result.err
    return result.out.strip()


class TestStatus:
    def test_one_definition_of_terminal(self) -> None:
        assert {s for s in RolloutStatus if s.is_terminal} == TERMINAL_STATUSES
        assert RolloutStatus.terminal("Cancelled") and not RolloutStatus.terminal("verifying")
        assert RolloutStatus.succeeded("completed"), "the hosted service's older spelling"
        assert not RolloutStatus.terminal("paused") and RolloutStatus.parse(None) is None

    def test_a_cancelled_rollout_ends_a_wait_as_not_succeeded(
        self, cli: CLI, paused: str
    ) -> None:
        rid = queue_one(cli, paused)
        assert cli("rollouts", "cancel", rid, "--yes").code == 0
        result = cli("rollouts", "wait", rid, "--timeout", "30", "-o", "json")
        assert result.code == 5, result.err
        assert RolloutStatus(result.json()[0]["status"]) is RolloutStatus.CANCELLED
        assert "0/1 succeeded" in result.err
