"""The Tab press's data: the generated command tree, and the cache files of backend values."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

from envpools_cli.completion import cache, spec


def test_the_tab_press_reads_the_tree_the_app_builds() -> None:
    # scripts/update-screens --check holds the file current; this, what load() returns.
    assert spec.load()["tree"] == spec.build()


def test_a_damaged_or_foreign_file_reads_as_empty() -> None:
    where = Path(cache.path_of("thing"))
    where.parent.mkdir(parents=True, exist_ok=True)
    for content in (b"", b"\x00garbage", marshal.dumps([1, 2])):
        where.write_bytes(content)
        assert cache.read(str(where)) == {}


def test_what_is_written_reads_back_and_is_private() -> None:
    where = cache.path_of("thing")
    cache.write(where, {"a": 1, "ids": [("ro_1", "queued")]})
    assert cache.read(where) == {"a": 1, "ids": [("ro_1", "queued")]}
    assert os.stat(where).st_mode & 0o777 == 0o600
    assert not [p for p in os.listdir(os.path.dirname(where)) if p.endswith(".tmp")]


def test_values_that_cannot_be_stored_cost_only_speed() -> None:
    class Status(str):
        pass

    where = cache.path_of("thing")
    cache.write(where, {"status": Status("queued")})  # marshal refuses str subclasses
    assert cache.read(where) == {}
