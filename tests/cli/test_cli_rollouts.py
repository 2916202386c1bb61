"""envpools rollouts: create, follow, wait, inspect, download, against the real backend."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from envpools_cli.downloads import safe_target
from tests.integration.conftest import make_task

from .conftest import CLI, EXAMPLE, Local


@pytest.fixture
def pool(cli: CLI, backend: Local) -> str:
    assert cli("pools", "create", "coding", "--local", str(EXAMPLE), "--concurrency", "2").code == 0
    return "coding"


def launch(cli: CLI, *extra: str, agent: str = "oracle") -> str:
    result = cli(
        "rollouts",
        "create",
        "--agent",
        agent,
        "--task",
        "envpools-examples/fix-failing-test",
        "--pool",
        "coding",
        "-q",
        *extra,
    )
    assert result.code == 0, result.err
    return result.out.strip()


class TestCreate:
    def test_quiet_prints_only_the_id(self, cli: CLI, pool: str) -> None:
        rid = launch(cli, "--metadata", "team=ml", "--priority", "2", "--agent-timeout", "60")
        assert rid.startswith("ro_") and "\n" not in rid
        doc = cli("rollouts", "get", rid, "--json").json()
        assert doc["metadata"] == {"team": "ml"}
        assert doc["priority"] == 2
        assert doc["timeouts"] == {"agent_sec": 60}

    def test_models_are_checked_against_the_backends_capabilities(
        self, cli: CLI, pool: str
    ) -> None:
        """The local backend takes any model id for codex (a gateway's names are its own);
        what stops this request is that codex is not installed, before anything is created."""
        result = cli(
            "rollouts",
            "create",
            "--agent",
            "codex",
            "--model",
            "gpt-4o",
            "--task",
            "d/t",
            "--pool",
            "coding",
        )
        assert result.code == 1, result.err
        assert "not allowed" not in result.err
        assert "envpools agents install codex" in result.err
        assert cli("rollouts", "list", "-q").out == ""

    def test_unknown_agent_lists_the_backend_ones(self, cli: CLI, pool: str) -> None:
        result = cli(
            "rollouts",
            "create",
            "--agent",
            "aider",
            "--task",
            "d/t",
            "--pool",
            "coding",
            "-o",
            "json",
        )
        assert result.code == 2
        message = json.loads(result.err)["error"]["message"]
        assert "Unknown harness 'aider'" in message and "oracle" in message

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--agent", "oracle", "--task", "no-slash"), "add --pool POOL"),
            (("--agent", "oracle", "--task", "/t", "--pool", "coding"), "DATASET/TASK_ID"),
            (("--agent", "oracle", "--task", "d/t"), "--pool, --pool-tag or --env-backend"),
            (("--task", "d/t", "--pool", "coding"), "missing --agent"),
            (
                ("--agent", "oracle", "--task", "d/t", "--pool", "p", "--wait", "--follow"),
                "--wait or --follow",
            ),
            (
                ("--agent", "oracle", "--task", "d/t", "--pool", "p", "--metadata", "oops"),
                "KEY=VALUE",
            ),
        ],
    )
    def test_usage_errors(
        self, cli: CLI, backend: Local, args: tuple[str, ...], message: str
    ) -> None:
        result = cli("rollouts", "create", *args)
        assert result.code == 2
        assert message in result.err

    def test_dry_run(self, cli: CLI, pool: str) -> None:
        result = cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--dry-run",
            "--json",
        )
        assert result.code == 0
        assert result.json()["selected_pool_id"] == "coding"
        assert cli("rollouts", "list", "-q").out == ""

    def test_count_uses_the_batch_endpoint(self, cli: CLI, pool: str) -> None:
        result = cli(
            "rollouts",
            "create",
            "--agent",
            "nop",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--count",
            "3",
            "-q",
        )
        ids = result.lines()
        assert len(ids) == 3 and len(set(ids)) == 3

    def test_from_file_with_flag_overrides(self, cli: CLI, pool: str, tmp_path: Path) -> None:
        request = {
            "task_ref": {"dataset": "d", "task_id": "fix-failing-test"},
            "agent": {"harness": "nop"},
            "pool_id": "coding",
            "task_app_id": "",
            "timeouts": {"agent_sec": 30},
            "metadata": {"a": "1"},
        }
        spec = tmp_path / "request.json"
        spec.write_text(json.dumps(request))
        rid = cli(
            "rollouts",
            "create",
            "--from-file",
            str(spec),
            "--agent",
            "oracle",
            "--metadata",
            "b=2",
            "-q",
        ).out.strip()
        doc = cli("rollouts", "get", rid, "--json").json()
        assert doc["agent"]["harness"] == "oracle"
        assert doc["metadata"] == {"a": "1", "b": "2"}
        assert doc["timeouts"] == {"agent_sec": 30}
        rid2 = cli(
            "rollouts", "create", "--from-file", "-", "-q", stdin=json.dumps(request)
        ).out.strip()
        assert rid2.startswith("ro_")

    def test_idempotency_key_from_the_cli(self, cli: CLI, pool: str) -> None:
        first = launch(cli, "--idempotency-key", "ci-run-42")
        again = launch(cli, "--idempotency-key", "ci-run-42")
        assert first == again

    def test_wait_flag_exit_codes(self, cli: CLI, pool: str) -> None:
        ok = cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--wait",
            "--min-reward",
            "1",
            "--json",
        )
        assert ok.code == 0, ok.err
        assert ok.json()["status"] == "succeeded", "one rollout: one object"
        low = cli(
            "rollouts",
            "create",
            "--agent",
            "nop",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--wait",
            "--min-reward",
            "1",
            "-q",
        )
        assert low.code == 5
        assert low.out.strip().startswith("ro_")

    def test_follow_prints_events_then_exits_with_the_status(self, cli: CLI, pool: str) -> None:
        result = cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--follow",
        )
        assert result.code == 0, result.err
        assert "patched textutils.slugify" in result.out
        assert "status succeeded" in result.out


class TestWaitAndTail:
    def test_wait_many_with_junit(self, cli: CLI, pool: str, tmp_path: Path) -> None:
        good, bad = launch(cli), launch(cli, agent="nop")
        report = tmp_path / "out" / "junit.xml"
        result = cli(
            "rollouts",
            "wait",
            good,
            bad,
            "--min-reward",
            "1",
            "--junit",
            str(report),
            "--timeout",
            "60",
            "-o",
            "json",
        )
        assert result.code == 5
        assert {d["rollout_id"] for d in result.json()} == {good, bad}
        suite = ET.parse(report).getroot().find("testsuite")
        assert suite is not None
        assert suite.get("tests") == "2" and suite.get("failures") == "1"
        failure = [c for c in suite.iter("testcase") if c.find("failure") is not None]
        assert bad in failure[0].get("name", "")

    def test_wait_times_out_with_3(self, cli: CLI, backend: Local) -> None:
        cli("pools", "create", "paused", "--local", str(EXAMPLE), "--concurrency", "0")
        rid = cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "paused",
            "-q",
        ).out.strip()
        started = time.monotonic()
        result = cli("rollouts", "wait", rid, "--timeout", "1.5")
        assert result.code == 3
        assert time.monotonic() - started < 10
        assert "still running" in result.err

    def test_wait_not_found(self, cli: CLI, backend: Local) -> None:
        assert cli("rollouts", "wait", "ro_nope", "--timeout", "5").code == 6

    def test_tail_plain_and_jsonl(self, cli: CLI, pool: str) -> None:
        rid = launch(cli)
        plain = cli("rollouts", "tail", rid)
        assert plain.code == 0
        assert any("lifecycle" in line and "status queued" in line for line in plain.lines())
        assert plain.lines()[-1].endswith("reward 1")
        jsonl = cli("rollouts", "tail", rid, "-o", "jsonl")
        events = [json.loads(line) for line in jsonl.lines()]
        assert events[-1]["event"] == "end"
        assert events[-1]["data"] == {"reason": "terminal", "status": "succeeded"}
        seqs = [e["seq"] for e in events[:-1]]
        assert seqs == list(range(1, len(seqs) + 1))
        as_json = cli("rollouts", "tail", rid, "--json").json()
        assert [e["seq"] for e in as_json] == seqs

    def test_tail_filters_and_exit_status(self, cli: CLI, pool: str) -> None:
        rid = launch(cli, agent="nop")
        cli("rollouts", "wait", rid)
        only = cli("rollouts", "tail", rid, "--type", "reward", "-o", "jsonl", "--exit-status")
        assert only.code == 0, "succeeded (reward 0 is still a success of the rollout)"
        kinds = {json.loads(line)["event"] for line in only.lines()}
        assert kinds == {"reward", "end"}
        bad = cli("rollouts", "tail", rid, "--type", "bogus")
        assert bad.code == 2

    def test_tail_no_follow_on_a_running_rollout(
        self, cli: CLI, backend: Local, tmp_path: Path
    ) -> None:
        task = make_task(tmp_path, "slow", solve="echo hello; sleep 30")
        cli("pools", "create", "slow", "--local", str(task))
        rid = cli(
            "rollouts", "create", "--agent", "oracle", "--task", "d/slow", "--pool", "slow", "-q"
        ).out.strip()
        deadline = time.monotonic() + 20
        while "hello" not in cli("rollouts", "tail", rid, "--no-follow").out:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        started = time.monotonic()
        result = cli("rollouts", "tail", rid, "--no-follow", "--exit-status")
        assert time.monotonic() - started < 5, "caught up and returned"
        assert result.code == 3, "still running"
        timed = cli("rollouts", "tail", rid, "--timeout", "1")
        assert timed.code == 3
        cli("rollouts", "cancel", rid, "--yes")


class TestInspect:
    def test_get_list_summary_usage(self, cli: CLI, pool: str) -> None:
        rid = launch(cli)
        assert cli("rollouts", "wait", rid).code == 0
        assert cli("rollouts", "get", rid, "--exit-status", "-q").code == 0
        record = cli("rollouts", "get", rid)
        assert "Status:   succeeded" in record.lines()
        listed = cli("rollouts", "list", "--status", "succeeded", "-o", "json").json()
        assert [r["rollout_id"] for r in listed] == [rid]
        table = cli("rollouts", "list")
        assert table.lines()[0].startswith("ROLLOUT\tSTATUS")
        summary = cli("rollouts", "summary", rid, "--json").json()
        assert summary["status"] == "succeeded" and summary["event_count"] > 5
        usage = cli("rollouts", "usage", rid)
        assert "Wall time" in usage.out and "Cost total" in usage.out
        usage_json = cli("rollouts", "usage", rid, "--json").json()
        assert usage_json["rollout_id"] == rid and "provider_costs" in usage_json

    def test_list_follows_pages(self, cli: CLI, pool: str) -> None:
        cli("pools", "update", "coding", "--concurrency", "0")
        ids = [launch(cli) for _ in range(7)]
        listed = cli("rollouts", "list", "--limit", "7", "-q").lines()
        assert listed == ids[::-1]
        assert len(cli("rollouts", "list", "--limit", "3", "-q").lines()) == 3

    def test_cancel_replay_validate(self, cli: CLI, pool: str) -> None:
        cli("pools", "update", "coding", "--concurrency", "0")
        rid = launch(cli)
        assert cli("rollouts", "cancel", rid).code == 2, "asks for --yes when not interactive"
        cancelled = cli("rollouts", "cancel", rid, "--yes", "--json").json()
        assert cancelled["status"] == "cancelled"
        replay = cli(
            "rollouts", "replay", rid, "--agent", "nop", "--metadata", "why=retry", "--json"
        ).json()
        assert replay["replay_of"] == rid and replay["agent"]["harness"] == "nop"
        assert replay["metadata"]["why"] == "retry"
        bad_model = cli("rollouts", "replay", rid, "--agent", "codex", "--model", "gpt-4o")
        assert bad_model.code == 2
        valid = cli(
            "rollouts",
            "validate",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "coding",
            "--json",
        )
        assert valid.code == 0 and valid.json()["valid"] is True
        invalid = cli(
            "rollouts",
            "validate",
            "--agent",
            "oracle",
            "--task",
            "d/x",
            "--pool",
            "coding",
            "--json",
        )
        assert invalid.code == 1 and invalid.json()["valid"] is False

    def test_artifacts_download_and_zip(
        self, cli: CLI, pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rid = launch(cli)
        cli("rollouts", "wait", rid)
        manifest = cli("rollouts", "artifacts", rid, "--json").json()
        paths = {a["path"]: a for a in manifest}
        assert "verifier/reward.txt" in paths
        target = tmp_path / "dl"
        result = cli("rollouts", "download", rid, "--dir", str(target))
        assert result.code == 0, result.err
        assert result.out == "", "progress and messages go to stderr"
        for path, entry in paths.items():
            data = (target / path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        again = cli("rollouts", "download", rid, "--dir", str(target))
        assert again.code == 2 and "--overwrite" in again.err
        one = cli(
            "rollouts", "download", rid, "verifier/reward.txt", "--dir", str(tmp_path / "one")
        )
        assert one.code == 0
        assert [p.name for p in (tmp_path / "one").rglob("*") if p.is_file()] == ["reward.txt"]
        missing = cli("rollouts", "download", rid, "nope.txt", "--dir", str(tmp_path / "x"))
        assert missing.code == 6
        monkeypatch.chdir(tmp_path)
        zipped = cli("rollouts", "download", rid, "--zip")
        assert zipped.code == 0, zipped.err
        with zipfile.ZipFile(tmp_path / f"{rid}-artifacts.zip") as archive:
            assert sorted(archive.namelist()) == sorted(paths)
        assert not list(tmp_path.rglob("*.part")), "no partial files left behind"
        streamed = subprocess.run(
            [sys.executable, "-m", "envpools_cli", "rollouts", "download", rid, "--zip-file", "-"],
            capture_output=True,
            check=False,
        )
        assert streamed.returncode == 0, streamed.stderr
        with zipfile.ZipFile(io.BytesIO(streamed.stdout)) as archive:
            assert sorted(archive.namelist()) == sorted(paths), "the zip, whole, on stdout"

    def test_support_bundle_never_holds_the_key(
        self, cli: CLI, pool: str, backend: Local, tmp_path: Path
    ) -> None:
        rid = launch(cli, "--metadata", "api_token=shh-very-secret")
        cli("rollouts", "wait", rid)
        out = tmp_path / "bundle.json"
        assert cli("rollouts", "support-bundle", rid, "--out", str(out)).code == 0
        text = out.read_text()
        assert backend.key not in text
        assert "shh-very-secret" not in text
        bundle = json.loads(text)
        assert bundle["rollout"]["rollout_id"] == rid
        assert json.loads(cli("rollouts", "support-bundle", rid).out)["events"]


def test_safe_target_refuses_escapes(tmp_path: Path) -> None:
    assert safe_target(tmp_path, "agent/log.txt") == tmp_path / "agent" / "log.txt"
    for bad in ("../x", "/etc/passwd", "a/../../x", "a\\b", ""):
        with pytest.raises(Exception, match="refusing"):
            safe_target(tmp_path, bad)


def test_an_agent_the_backend_cannot_run_is_refused_up_front(cli: CLI, pool: str) -> None:
    caps = cli("capabilities", "get", "--json").json()
    codex = next(a for a in caps["agents"] if a["name"] == "codex")
    if codex["available"]:
        pytest.skip("codex is installed on this machine")
    result = cli(
        "rollouts", "create", "--agent", "codex", "--task", "d/fix-failing-test", "--pool", "coding"
    )
    assert result.code == 1
    assert "agent 'codex' is not available on this backend" in result.err
    assert "not installed" in result.err
    assert cli("rollouts", "list", "-q").out == "", "nothing was queued"


def test_from_file_list_and_no_batch_endpoint(
    cli: CLI, pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list of requests uses the batch endpoint, or bounded concurrent creates without it."""
    from envpools_cli import client as ep

    requests = [
        {
            "task_ref": {"dataset": "d", "task_id": "fix-failing-test"},
            "agent": {"harness": harness},
            "pool_id": "coding",
            "task_app_id": "",
            "timeouts": {},
        }
        for harness in ("oracle", "nop", "oracle")
    ]
    spec = tmp_path / "many.json"
    spec.write_text(json.dumps(requests))
    dry = cli("rollouts", "create", "--from-file", str(spec), "--dry-run", "--json")
    assert dry.code == 0 and len(dry.json()) == 3
    assert cli("rollouts", "list", "-q").out == ""

    def no_batch(**kwargs: object) -> None:
        request = ep.errors.httpx.Request("POST", "http://h/v1/rollouts/batch")
        response = ep.errors.httpx.Response(404, json={"detail": "Not Found"}, request=request)
        raise ep.errors.error_from_response(response)

    monkeypatch.setattr(ep, "create_rollouts_batch", no_batch)
    result = cli(
        "rollouts",
        "create",
        "--from-file",
        str(spec),
        "--count",
        "2",
        "-q",
        "--idempotency-key",
        "list-1",
    )
    assert result.code == 0, result.err
    assert "no batch endpoint" in result.err
    ids = result.lines()
    assert len(ids) == 6 and len(set(ids)) == 6
    again = cli(
        "rollouts",
        "create",
        "--from-file",
        str(spec),
        "--count",
        "2",
        "-q",
        "--idempotency-key",
        "list-1",
    )
    assert sorted(again.lines()) == sorted(ids), "derived keys: nothing created twice"
    harnesses = [cli("rollouts", "get", i, "--json").json()["agent"]["harness"] for i in ids]
    assert sorted(harnesses) == ["nop", "nop", "oracle", "oracle", "oracle", "oracle"]


def test_tail_timeout_holds_on_a_quiet_stream(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envpools_cli.server.serve import BackendThread
    from envpools_cli.server.settings import ServerSettings

    quiet = BackendThread(ServerSettings(data_dir=tmp_path / "q", heartbeat_sec=60)).start()
    try:
        _, key = quiet.create_key()
        monkeypatch.setenv("ENVPOOLS_API_URL", quiet.url)
        monkeypatch.setenv("ENVPOOLS_API_KEY", key)
        task = make_task(tmp_path, "sleepy", solve="sleep 30")
        cli("pools", "create", "q", "--local", str(task))
        rid = cli(
            "rollouts", "create", "--agent", "oracle", "--task", "d/sleepy", "--pool", "q", "-q"
        ).out.strip()
        started = time.monotonic()
        result = cli("rollouts", "tail", rid, "--timeout", "1.5")
        assert result.code == 3
        assert time.monotonic() - started < 6, "no heartbeat for 60 s, yet it stopped on time"
        cli("rollouts", "cancel", rid, "--yes")
    finally:
        quiet.stop()


def test_tail_survives_a_backend_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from tests.integration.conftest import start_backend

    first = start_backend(tmp_path / "data")
    _, key = first.create_key()
    env = {"ENVPOOLS_API_URL": first.url, "ENVPOOLS_API_KEY": key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    task = make_task(tmp_path, "long", solve="echo before; sleep 60")

    def envpools(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "envpools_cli", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    envpools("pools", "create", "p", "--local", str(task))
    rid = envpools(
        "rollouts", "create", "--agent", "oracle", "--task", "d/long", "--pool", "p", "-q"
    )
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "envpools_cli",
            "rollouts",
            "tail",
            rid,
            "-o",
            "jsonl",
            "--exit-status",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The tail is connected (it printed an event) before the backend goes: a tail that
    # never reached the first backend has nothing to resume and says nothing about it.
    assert tail.stdout is not None and tail.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(tail.stdout or []), daemon=True)
    reader.start()
    started = time.monotonic() + 30
    while not lines:
        assert time.monotonic() < started, "tail printed nothing"
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while "before" not in envpools("rollouts", "tail", rid, "--no-follow"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.stop()
    time.sleep(1.0)
    second = start_backend(tmp_path / "data", port=first.port)
    try:
        tail.wait(timeout=90)
        reader.join(10)
    finally:
        second.stop()
    out, err = "".join(lines), tail.stderr.read()
    assert tail.returncode == 7, err  # backend_restarted is transient: safe to run again
    events = [json.loads(line) for line in out.splitlines()]
    seqs = [e["seq"] for e in events if e["event"] not in ("heartbeat", "end")]
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order"
    assert events[-2]["data"]["error"]["code"] == "backend_restarted"
    assert events[-1]["data"]["reason"] == "terminal"
    assert "reconnecting" in err, (err, out[-3000:])
