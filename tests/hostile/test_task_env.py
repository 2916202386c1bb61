"""Finding 3 (MEDIUM): ``${HOST_VAR}`` in task.toml env was expanded from the backend's env."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Backend, hostile_run, make_task, needs_bwrap

pytestmark = needs_bwrap

CANARY = "backend-env-canary-93fa2"


def test_task_env_values_never_read_the_backend_environment(
    backend_factory: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTILE_CANARY", CANARY)  # the backend runs in this process
    backend: Backend = backend_factory()  # type: ignore[operator]
    task = make_task(
        tmp_path,
        "env-expansion",
        toml=(
            '[verifier.env]\nBRACED = "${HOSTILE_CANARY}"\nBARE = "$HOSTILE_CANARY"\n'
            'DEFAULTED = "${HOSTILE_CANARY:-fallback}"\n'
            '[solution.env]\nSOLVE = "${HOSTILE_CANARY}"\n'
        ),
        solve='echo "solve=$SOLVE"',
        test="""
        echo "braced=$BRACED"
        echo "bare=$BARE"
        echo "defaulted=$DEFAULTED"
        echo 1 > /logs/verifier/reward.txt
        """,
    )
    run = hostile_run(backend, task)

    assert CANARY not in run.everything(), "the backend's environment reached the task"
    values = run.values()
    assert values["braced"] == "${HOSTILE_CANARY}", "values are passed as written"
    assert values["bare"] == "$HOSTILE_CANARY"
    assert values["solve"] == "${HOSTILE_CANARY}"
    assert run.doc["status"] == "succeeded"
