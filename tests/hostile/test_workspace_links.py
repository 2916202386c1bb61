"""Finding 7 (INFO): ``workspace.tar.gz`` keeps the links an agent made to host paths.

They are kept as links, their targets recorded and never followed: nothing of what a
link points at is read into the archive, and no entry lies beneath a link (so an archive
cannot write through one when unpacked). A careful unpacker refuses them.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from envpools_cli import client as ep

from .conftest import Backend, hostile_run, make_task


def test_links_to_the_host_are_recorded_not_followed(backend: Backend, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        "links",
        solve="""
        ln -s /etc/passwd /app/hostfile
        ln -s / /app/hostroot
        ln -s ../../../.. /app/climb
        mkdir -p /app/sub && ln -s ../README.md /app/sub/readme
        echo made
        """,
    )
    run = hostile_run(backend, task)
    assert run.doc["status"] == "succeeded", run.doc
    data = ep.fetch_artifact(run.rollout_id, "workspace.tar.gz", **backend.conn)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
        links = {n: m.linkname for n, m in members.items() if m.issym()}
        assert links == {
            "workspace/hostfile": "/etc/passwd",
            "workspace/hostroot": "/",
            "workspace/climb": "../../../..",
            "workspace/sub/readme": "../README.md",
        }
        assert all(m.size == 0 for n, m in members.items() if n in links)
        for name in links:
            assert not any(other.startswith(name + "/") for other in members), name
        contents = b""
        for member in members.values():
            if member.isfile() and (handle := archive.extractfile(member)) is not None:
                contents += handle.read()
        assert b"hello" in contents and b"root:x:0:0" not in contents, "nothing was followed"
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12
            with pytest.raises(tarfile.TarError):
                archive.extractall(tmp_path / "unpacked", filter="data")
