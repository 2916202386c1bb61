"""``snapshots``: what is kept can be stored, an edit invalidates it, damage is survivable."""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path

import pytest

from envpools_cli import snapshots
from envpools_cli.completion import spec


def test_the_completion_tree_is_stored_and_read_back() -> None:
    tree = spec.build()
    assert marshal.loads(marshal.dumps(tree)) == tree  # plain values only (no StrEnum)
    assert spec.load()["tree"] == tree
    stored = snapshots.read(snapshots.path_of("completion/spec"))
    assert stored == {"fingerprint": snapshots.fingerprint(), "data": tree}


def test_an_edit_changes_the_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "commands").mkdir()
    module = tmp_path / "commands" / "pools.py"
    module.write_text('"""Pools."""\n')
    monkeypatch.setattr(snapshots, "_PACKAGE", str(tmp_path))
    before = snapshots.fingerprint()
    assert snapshots.fingerprint() == before
    module.write_text('"""Pools: where rollouts run."""\n')
    assert snapshots.fingerprint() != before
    changed = snapshots.fingerprint()
    os.utime(module, ns=(1, 1))  # same size, another mtime
    assert snapshots.fingerprint() != changed


def test_an_install_in_site_packages_changes_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Typer upgrade alone (envpools untouched) must not keep serving the old help."""
    site = tmp_path / "lib" / "site-packages"
    (site / "typer-0.29.0.dist-info").mkdir(parents=True)
    os.utime(site, ns=(1, 1))
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    before = snapshots.fingerprint()
    (site / "typer-0.29.0.dist-info").rename(site / "typer-0.29.1.dist-info")
    assert snapshots.fingerprint() != before


def test_load_rebuilds_what_does_not_match(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []

    def build() -> dict[str, int]:
        builds.append(1)
        return {"n": len(builds)}

    assert snapshots.load("thing", build) == {"n": 1}
    assert snapshots.load("thing", build) == {"n": 1}  # kept
    monkeypatch.setattr(snapshots, "fingerprint", lambda: "after an upgrade")
    assert snapshots.load("thing", build) == {"n": 2}


def test_a_damaged_or_foreign_file_reads_as_empty() -> None:
    where = Path(snapshots.path_of("thing"))
    where.parent.mkdir(parents=True, exist_ok=True)
    for content in (b"", b"\x00garbage", marshal.dumps([1, 2])):
        where.write_bytes(content)
        assert snapshots.read(str(where)) == {}
    assert snapshots.load("thing", lambda: "fresh") == "fresh"


def test_written_files_are_private() -> None:
    where = snapshots.path_of("thing")
    snapshots.write(where, {"a": 1})
    assert os.stat(where).st_mode & 0o777 == 0o600
    assert not [p for p in os.listdir(os.path.dirname(where)) if p.endswith(".tmp")]
