"""Finding 8 (LOW): a task whose ``environment`` is a symlink copied the linked host folder
into the workspace, and error texts told which host paths exist."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envpools_cli import client as ep

from .conftest import Backend, hostile_run, local_task, make_task, needs_bwrap

CANARY = "host-folder-canary-0b77"


@needs_bwrap
def test_a_symlinked_environment_is_not_copied(backend: Backend, tmp_path: Path) -> None:
    host_folder = tmp_path / "host-private"
    host_folder.mkdir()
    (host_folder / "id_rsa").write_text(CANARY + "\n")
    task = make_task(tmp_path, "linked-env", solve="cat /app/* /app/repo/* 2>/dev/null; ls -R /app")
    shutil.rmtree(task / "environment")
    (task / "environment").symlink_to(host_folder)
    try:
        run = hostile_run(backend, task)
    except ep.ValidationError as exc:  # refused when the pool task is created: fine too
        assert "symbolic link" in exc.message
        return
    assert CANARY not in run.everything()
    assert run.doc["status"] == "error" and run.doc["error"]["code"] == "bad_task_source"
    trial = backend.data_dir / "trials" / run.rollout_id
    assert not any(
        CANARY in p.read_text() for p in trial.rglob("*") if p.is_file() and p.suffix != ".gz"
    )


@pytest.mark.parametrize(
    "make_path",
    [
        lambda tmp: Path("/etc"),  # a folder that exists but is no task
        lambda tmp: Path("/etc/hostname"),  # a file
        lambda tmp: tmp,  # a folder of the backend's user
    ],
    ids=["existing-folder", "existing-file", "private-folder"],
)
def test_task_path_errors_do_not_tell_which_host_paths_exist(
    backend: Backend, tmp_path: Path, make_path: object
) -> None:
    path = make_path(tmp_path)  # type: ignore[operator]
    backend.pool("p")
    with pytest.raises(ep.ValidationError) as info:
        ep.create_pool_task("p", request=local_task("t", path), **backend.conn)
    message = info.value.message.replace(str(path), "<path>")
    reference = tmp_path / "reference-missing"
    with pytest.raises(ep.ValidationError) as missing:
        ep.create_pool_task("p", request=local_task("t", reference), **backend.conn)
    assert message == missing.value.message.replace(str(reference), "<path>")
