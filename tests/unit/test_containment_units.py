"""The pieces the sandbox's containment is built from: no-follow file access, scrubbing,
limits resolution and secret redaction."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from envpools_cli.redaction import REDACTED, redact_text
from envpools_cli.server.sandbox.limits import (
    DEFAULT_LIMITS,
    DEFAULT_MAXIMA,
    parse_limits,
    resolve_limits,
)
from envpools_cli.server.sandbox.safefs import (
    Walk,
    open_dir,
    open_relative,
    read_at,
    tree_usage,
    write_at,
)
from envpools_cli.server.trial.scrub import Scrubber


def test_write_at_replaces_a_planted_link_instead_of_writing_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "exit-code.txt").symlink_to(victim)
    fd = open_dir(folder)
    try:
        write_at(fd, "exit-code.txt", [b"3\n"])
    finally:
        os.close(fd)
    assert victim.read_text() == "keep"
    assert not (folder / "exit-code.txt").is_symlink()
    assert (folder / "exit-code.txt").read_text() == "3\n"


def test_reads_skip_links_fifos_and_linked_folders(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    (root / "dir-link").symlink_to(tmp_path)
    os.mkfifo(root / "fifo")
    (root / "plain").write_text("ok")
    fd = open_dir(root)
    try:
        assert read_at(fd, "link", 100) is None
        assert read_at(fd, "fifo", 100) is None  # returns at once: never opened
        assert read_at(fd, "plain", 100) == b"ok"
        kinds = {e.path: (e.is_file, e.is_link, e.special) for e in Walk(fd)}
    finally:
        os.close(fd)
    assert kinds == {
        "dir-link": (False, True, False),
        "fifo": (False, False, True),
        "link": (False, True, False),
        "plain": (True, False, False),
    }
    assert open_relative(root, ["dir-link", "secret"]) is None, "no folder link is followed"


def test_tree_usage_counts_blocks_and_flags_trees_too_deep(tmp_path: Path) -> None:
    (tmp_path / "data").write_bytes(b"x" * 100_000)
    usage = tree_usage([tmp_path])
    assert usage.bytes >= 100_000 and usage.complete
    deep = tmp_path.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)
    assert not tree_usage([tmp_path]).complete


def test_scrubber_catches_values_split_across_chunks() -> None:
    secret = "sk-0123456789abcdef"
    scrubber = Scrubber([secret, "short"])  # too short to scrub
    data = (b"a" * 70_000 + secret.encode() + b"b" * 10) * 3
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    out = b"".join(scrubber.stream(chunks))
    assert secret.encode() not in out and out.count(REDACTED.encode()) == 3
    assert scrubber.found_in(chunks) and not scrubber.found_in([b"nothing here"])
    assert scrubber.text('{"key": "sk-0123456789abcdef"}') == '{"key": "[REDACTED]"}'
    assert scrubber.text("short stays") == "short stays"


@pytest.mark.parametrize(
    "shown",
    [
        "Illegal header value b'Bearer ep_local_abcdef\\nghijklmn'",
        '{"message": "bad key \\"ep_local_abcdef\\\\nghijklmn\\""}',
        "key=ep_local_abcdef%0Aghijklmn",
        "pieces: ep_local_abcdef and ghijklmn",
    ],
)
def test_every_form_of_a_malformed_key_is_redacted(shown: str) -> None:
    text = redact_text(shown, ["ep_local_abcdef\nghijklmn"], pieces=True)
    assert "abcdef" not in text and "ghijklmn" not in text


def test_limits_are_clamped_to_the_backend_maxima() -> None:
    limits, notes = resolve_limits(
        {"memory_mb": 999_999, "storage": "20G", "processes": 64},
        {"memory_mb": 1024},  # a pool task's resources win over task.toml
    )
    assert limits.memory_mb == 1024 and limits.processes == 64
    assert limits.storage_mb == 20480 and not notes
    limits, notes = resolve_limits({"memory_mb": 999_999})
    assert limits.memory_mb == DEFAULT_MAXIMA.memory_mb and "999999" in notes[0]
    assert limits.tmp_bytes == DEFAULT_LIMITS.tmp_mb * 1024 * 1024
    assert parse_limits("memory_mb=4096, processes=100", DEFAULT_LIMITS).processes == 100
    with pytest.raises(ValueError, match="NAME=POSITIVE_INTEGER"):
        parse_limits("memory=lots", DEFAULT_LIMITS)


def test_sandbox_uids_are_unique_while_taken() -> None:
    from envpools_cli.server.sandbox.drivers import SandboxUsers

    users = SandboxUsers(base=1879048192, span=4)
    taken = [users.take() for _ in range(4)]
    assert len({u.uid for u in taken}) == 4
    with pytest.raises(RuntimeError, match="no free sandbox uid"):
        users.take()
    users.release(taken[0])
    again = threading.Thread(target=lambda: taken.append(users.take()))
    again.start()
    again.join(5)
    assert taken[-1].uid == taken[0].uid
