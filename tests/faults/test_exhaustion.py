"""Running out of open files is ``resource_exhausted``, a full disk ``disk_full``: on a create
(503 / 507 with the reason, not 500) and on a running rollout (its error code, not
``internal`` or ``bad_task_source``), whichever layer met it first.

The faults are injected where the machine's would come from: an ``OSError`` with the
errno the kernel gives, and SQLite's own errors (its real SQLITE_FULL, from a database
held at its page count).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.server import tasks as tasks_module
from envpools_cli.server.state.exhaustion import exhaustion
from envpools_cli.server.state.store import Store
from tests.integration.conftest import Backend, local_task, make_task

from .conftest import rollout_request


def _real_sqlite_full(tmp_path: Path) -> sqlite3.Error:
    """The error SQLite itself raises when its file cannot grow."""
    conn = sqlite3.connect(tmp_path / "tiny.db")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("SQLite wrote past max_page_count")


def test_what_is_exhausted_is_named_from_the_error_itself(tmp_path: Path) -> None:
    data = tmp_path
    cases: list[tuple[BaseException, str | None]] = [
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk_full"),
        (OSError(errno.EMFILE, "Too many open files"), "resource_exhausted"),
        (OSError(errno.ENFILE, "Too many open files in system"), "resource_exhausted"),
        (shutil.Error([("a", "b", "[Errno 28] No space left on device: 'b'")]), "disk_full"),
        (_real_sqlite_full(tmp_path), "disk_full"),
        (OSError(errno.ENOENT, "No such file"), None),
        (ValueError("nothing of the machine's"), None),
    ]
    for error, code in cases:
        found = exhaustion(error, data)
        assert (found.code if found else None) == code, error
    # Anywhere in the chain: a TaskError raised while handling ENOSPC is still disk_full.
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("could not copy the workspace") from exc
    except RuntimeError as chained:
        found = exhaustion(chained, data)
    assert found is not None and found.code == "disk_full" and found.status == 507
    assert str(data) in found.message and "free of" in found.message
    emfile = exhaustion(OSError(errno.EMFILE, "Too many open files"), data)
    assert emfile is not None and emfile.status == 503
    assert "open files" in emfile.message and "ulimit -Hn" in emfile.message


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (OSError(errno.EMFILE, "Too many open files"), 503, "resource_exhausted"),
        (OSError(errno.ENOSPC, "No space left on device"), 507, "disk_full"),
    ],
)
def test_a_create_that_meets_exhaustion_says_so(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: OSError,
    status: int,
    code: str,
) -> None:
    backend.pool("p", local_task("t", make_task(tmp_path, "t")))

    def exhausted(self: Store, doc: dict[str, Any], request: dict[str, Any]) -> None:
        raise failure

    monkeypatch.setattr(Store, "insert_rollout", exhausted)
    headers = {"Authorization": f"Bearer {backend.key}", "Idempotency-Key": "k"}
    with httpx.Client(base_url=backend.url, headers=headers, timeout=30) as client:
        for _ in range(2):  # and again on the same connection: it stays open and answers
            answer = client.post("/v1/rollouts", json=rollout_request("p", "t"))
            assert answer.status_code == status, answer.text
            error = answer.json()["error"]
            assert error["code"] == code
            assert error["retryable"] is (status == 503)
            assert answer.headers.get("retry-after") == ("5" if status == 503 else None)
    if status == 507:  # not retried by the client: its error says it as it is
        with pytest.raises(ep.APIError) as refused:
            ep.create_rollout(request=rollout_request("p", "t"), **backend.conn)
        assert refused.value.status_code == 507 and refused.value.code == "disk_full"


def test_a_rollout_out_of_open_files_ends_resource_exhausted(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file left to read the task with: the machine's fault, not ``bad_task_source``."""
    backend.pool("p", local_task("t", make_task(tmp_path, "t")))

    def no_files(text: str) -> Any:  # reading the task's Dockerfile, as EMFILE would stop it
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(tasks_module, "parse_dockerfile", no_files)
    rollout = ep.create_rollout(request=rollout_request("p", "t"), **backend.conn)
    doc = backend.wait(rollout["rollout_id"])
    assert doc["status"] == "error", doc
    assert doc["error"]["code"] == "resource_exhausted", doc["error"]
    assert "open files" in doc["error"]["message"]
