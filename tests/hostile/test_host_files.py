"""Finding 1 (HIGH): the backend wrote through a symlink the task planted in /logs/agent."""

from __future__ import annotations

from pathlib import Path

from .conftest import Backend, hostile_run, make_task, needs_bwrap

pytestmark = needs_bwrap


def test_symlinked_exit_code_file_cannot_overwrite_a_host_file(
    backend: Backend, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious host data\n")
    task = make_task(
        tmp_path,
        "exit-code-link",
        solve=f"ln -s {victim} /logs/agent/exit-code.txt\nexit 3",
    )
    run = hostile_run(backend, task)

    assert victim.read_text() == "precious host data\n", "the backend wrote through the link"
    assert run.doc["status"] == "succeeded" and run.doc["agent_exit_code"] == 3
    trial = backend.data_dir / "trials" / run.rollout_id
    written = trial / "agent" / "exit-code.txt"
    assert not written.is_symlink() and written.read_text() == "3\n"
