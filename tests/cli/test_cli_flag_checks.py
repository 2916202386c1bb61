"""Every flag combination that cannot work exits 2 before the first request.

The backend is the real local server on port 0, wrapped in an ASGI layer that records
every HTTP request it receives: each refusal below asserts that the list stayed empty,
which also covers the id-prefix lookup (the ids given are prefixes on purpose).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli.server.serve import BackendThread
from envpools_cli.server.settings import ServerSettings

from .conftest import CLI, EXAMPLE


class Counting:
    """An ASGI app that notes each HTTP request, then hands it to the real one."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@dataclass
class Counted:
    counter: Counting
    rollout_id: str
    pool: str

    @property
    def requests(self) -> list[str]:
        return self.counter.requests


@dataclass
class Server:
    thread: BackendThread
    key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One backend for the module (each refusal leaves it as it was): a paused pool, one rollout."""
    thread = BackendThread(
        ServerSettings(data_dir=tmp_path_factory.mktemp("backend"), heartbeat_sec=1.0)
    )
    thread.server.config.app = Counting(thread.server.config.app)
    thread.start()
    try:
        _, key = thread.create_key("pro", name="cli")
        yield Server(thread, key)
    finally:
        thread.stop()


@pytest.fixture
def counted(cli: CLI, server: Server, monkeypatch: pytest.MonkeyPatch) -> Counted:
    monkeypatch.setenv("ENVPOOLS_API_URL", server.thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", server.key)
    counter = server.thread.server.config.app
    assert isinstance(counter, Counting)
    ids = cli("rollouts", "list", "--status", "queued", "-q").out.split()
    if not ids:
        # A pool that never starts anything: its rollouts stay queued.
        made = cli("pools", "create", "paused", "--local", str(EXAMPLE), "--concurrency", "0")
        assert made.code == 0, made.err
        created = cli(*CREATE, "--pool", "paused", "-q")
        assert created.code == 0, created.err
        ids = [created.out.strip()]
    assert counter.requests, "the counter sees the CLI's requests"
    counter.requests.clear()
    return Counted(counter, ids[0], "paused")


CREATE = ("rollouts", "create", "--agent", "oracle", "--task", "d/fix-failing-test")

#: (arguments, what the message says). ``{id}`` is a prefix of a real rollout's id,
#: ``{dir}`` an existing directory, ``{file}`` an existing file, ``{missing}`` a path
#: in a directory that does not exist.
REFUSED: list[tuple[tuple[str, ...], str]] = [
    # The output flags, on every command.
    (("rollouts", "list", "-q", "-o", "json"), "choose one output: -q or -o json"),
    (("rollouts", "get", "{id}", "--json", "-o", "yaml"), "choose one output: --json or -o yaml"),
    (("rollouts", "list", "-q", "--fields", "status"), "--fields has nothing to choose"),
    (("rollouts", "list", "--wide", "-o", "json"), "--wide adds table columns"),
    (("rollouts", "list", "--wide", "--fields", "rollout_id"), "drop --wide"),
    (("rollouts", "list", "-o", "xml"), "unknown output format 'xml'"),
    (("pools", "list", "--wide", "--json"), "--wide adds table columns"),
    (("pools", "get", "paused", "-q", "--fields", "pool_id"), "--fields has nothing"),
    (("capabilities", "get", "-o", "name"), "capabilities have no id to print"),
    (("rollouts", "artifacts", "{id}", "-q", "--json"), "choose one output"),
    # rollouts list: filters that can match nothing.
    (("rollouts", "list", "--status", "finished"), "unknown status 'finished'"),
    (("rollouts", "list", "--created-after", "yesterday"), "--created-after expects an RFC 3339"),
    (
        (
            "rollouts",
            "list",
            "--created-after",
            "2025-02-01T00:00:00Z",
            "--created-before",
            "2025-01-01T00:00:00Z",
        ),
        "--created-after must be earlier than --created-before",
    ),
    # rollouts create.
    ((*CREATE, "--pool", "paused", "--count", "2", "--follow"), "--follow works with one rollout"),
    ((*CREATE, "--pool", "paused", "--wait", "--follow"), "choose --wait or --follow"),
    ((*CREATE, "--pool", "paused", "--dry-run", "--wait"), "--dry-run creates nothing to wait"),
    ((*CREATE, "--pool", "paused", "--dry-run", "--follow"), "--dry-run creates nothing to follow"),
    ((*CREATE, "--pool", "paused", "--dry-run", "-q"), "-q has no id to print"),
    (
        (*CREATE, "--pool", "paused", "--dry-run", "--idempotency-key", "k1"),
        "nothing for --idempotency-key",
    ),
    ((*CREATE, "--pool", "paused", "--min-reward", "1"), "--min-reward applies to --wait"),
    ((*CREATE, "--pool", "paused", "--count", "3", "--timeout", "5"), "--timeout applies to"),
    ((*CREATE, "--pool", "paused", "--wait", "--timeout", "0"), "--timeout must be positive"),
    ((*CREATE, "--pool", "paused", "--count", "2", "-q", "--fields", "x"), "--fields has nothing"),
    (("rollouts", "create", "--task", "nodataset", "--agent", "oracle"), "add --pool POOL"),
    (("rollouts", "create", "--agent", "oracle", "--pool", "paused"), "missing --task"),
    (("rollouts", "create", *CREATE[2:]), "say where to run it"),
    ((*CREATE, "--pool", "paused", "--metadata", "novalue"), "--metadata expects KEY=VALUE"),
    # wait and tail.
    (("rollouts", "wait", "{id}", "--timeout", "0"), "--timeout must be positive"),
    (("rollouts", "wait", "{id}", "--junit", "{dir}"), "is a directory"),
    (("rollouts", "wait", "{id}", "-q", "--fields", "status"), "--fields has nothing"),
    (("rollouts", "tail", "{id}", "-o", "yaml"), "tail prints a live view, json or jsonl"),
    (
        ("rollouts", "tail", "{id}", "--since", "2025-01-01T00:00:00Z", "--cursor", "5"),
        "choose --since or --cursor",
    ),
    (("rollouts", "tail", "{id}", "--since", "an hour ago"), "--since expects an RFC 3339"),
    (("rollouts", "tail", "{id}", "--no-follow", "--timeout", "5"), "--timeout applies to"),
    (("rollouts", "tail", "{id}", "--timeout", "0"), "--timeout must be positive"),
    (("rollouts", "tail", "{id}", "--type", "agent,bogus"), "unknown event type(s) bogus"),
    # download, support-bundle, cancel, replay.
    (("rollouts", "download", "{id}", "--zip", "a.txt"), "not PATH arguments"),
    (("rollouts", "download", "{id}", "--zip", "--dir", "out"), "--zip-file"),
    (("rollouts", "download", "{id}", "a.txt", "--prefix", "agent/"), "PATH arguments or --prefix"),
    (("rollouts", "download", "{id}", "--zip-file", "-", "--overwrite"), "nothing to replace"),
    (("rollouts", "download", "{id}", "--dir", "{file}"), "is a file, not a directory"),
    (("rollouts", "download", "{id}", "--zip-file", "{dir}"), "is a directory"),
    (("rollouts", "download", "{id}", "--zip-file", "{file}"), "exists; use --overwrite"),
    (("rollouts", "support-bundle", "{id}", "--out", "{dir}"), "is a directory"),
    (("rollouts", "support-bundle", "{id}", "--out", "{missing}"), "does not exist"),
    (("rollouts", "cancel", "{id}"), "without --yes"),
    (("rollouts", "replay", "{id}", "--overrides", "{missing}"), "no such file"),
    (("rollouts", "replay", "{id}", "--metadata", "novalue"), "--metadata expects KEY=VALUE"),
    # pools.
    (("pools", "update", "paused"), "nothing to change"),
    (("pools", "create", "x", "--template", "NOPE"), "unknown template 'NOPE'"),
    (("pools", "create", "x", "--local", "{missing}"), "not a directory"),
    (("pools", "delete", "paused"), "without --yes"),
    (("pools", "tasks", "list", "paused", "--wide"), "No such option"),
]


@pytest.mark.parametrize(
    ("args", "message"), REFUSED, ids=[" ".join(args)[:70] for args, _ in REFUSED]
)
def test_refused_before_any_request(
    cli: CLI, counted: Counted, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    existing = tmp_path / "existing.zip"
    existing.write_bytes(b"mine")
    places = {
        "{id}": counted.rollout_id[:10],
        "{dir}": str(tmp_path),
        "{file}": str(existing),
        "{missing}": str(tmp_path / "nowhere" / "x.json"),
    }
    result = cli(*(places.get(arg, arg) for arg in args))
    assert (result.code, result.out) == (2, ""), result.err
    assert message in result.err, result.err
    assert counted.requests == [], "a refused command sent nothing"
    assert existing.read_bytes() == b"mine"


def test_json_errors_for_refusals_are_json(cli: CLI, counted: Counted) -> None:
    result = cli("rollouts", "list", "--wide", "-o", "json")
    error = json.loads(result.err)["error"]
    assert (error["exit_code"], counted.requests) == (2, [])
    assert "--wide" in error["message"]


def test_follow_with_a_file_of_two_requests(cli: CLI, counted: Counted, tmp_path: Path) -> None:
    request = {
        "task_ref": {"dataset": "d", "task_id": "fix-failing-test"},
        "agent": {"harness": "oracle"},
        "pool_id": counted.pool,
    }
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([request, request]))
    result = cli("rollouts", "create", "--from-file", str(batch), "--follow")
    assert result.code == 2 and "not 2" in result.err
    assert counted.requests == []


def test_the_same_flags_alone_do_reach_the_server(cli: CLI, counted: Counted) -> None:
    """The counter is not blind: each half of a refused pair works on its own."""
    assert cli("rollouts", "list", "-q").code == 0
    assert cli("rollouts", "list", "--wide").code == 0
    assert cli("rollouts", "list", "--status", "QUEUED", "-q").out.strip() == counted.rollout_id
    assert cli(*CREATE, "--pool", "paused", "--dry-run").code == 0
    assert any(r.endswith("/rollouts") for r in counted.requests), counted.requests
