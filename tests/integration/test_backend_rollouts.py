"""Rollouts on the real backend: rewards, cancel in each phase, timeouts, artifacts, usage."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.atif import Trajectory
from envpools_cli.server.trial.runner import read_reward

from .conftest import EXAMPLE, Backend, local_task, make_task, start_backend


def statuses(events: list[dict[str, object]]) -> list[object]:
    return [
        e["data"]["status"]
        for e in events  # type: ignore[index]
        if e["event"] == "lifecycle" and "previous" in e["data"]
    ]  # type: ignore[operator]


class TestRewards:
    def test_oracle_solves_the_example_task(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        rollout = backend.rollout("coding", "fix-failing-test", "oracle")
        assert rollout["status"] == "queued"
        events = backend.events(rollout["rollout_id"])
        assert statuses(events) == ["starting", "running", "verifying", "succeeded"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        reward = next(e for e in events if e["event"] == "reward")
        assert reward["data"]["reward"] == 1.0
        assert any(e["event"] == "agent" and "patched" in e["data"]["text"] for e in events)
        assert any(e["event"] == "verifier" for e in events)
        done = ep.get_rollout(rollout["rollout_id"], **backend.conn)
        assert done["status"] == "succeeded" and done["reward_primary"] == 1.0
        assert done["agent_exit_code"] == 0
        assert done["started_at"] and done["finished_at"]
        summary = ep.get_rollout_summary(rollout["rollout_id"], **backend.conn)
        assert summary["last_event"]["data"]["status"] == "succeeded"
        assert summary["event_count"] == len(events)

        # Its trajectory: the instruction, then one step running solve.sh, with its output.
        raw = ep.fetch_artifact(rollout["rollout_id"], "trajectory.json", **backend.conn)
        trajectory = Trajectory.model_validate_json(raw)
        assert trajectory.agent.name == "oracle" and trajectory.agent.version
        assert [s.source for s in trajectory.steps] == ["user", "agent"]
        assert "Fix the failing test" in str(trajectory.steps[0].message)
        step = trajectory.steps[1]
        assert step.llm_call_count == 0 and step.metrics is None
        assert step.tool_calls and step.tool_calls[0].arguments == {
            "command": "bash /solution/solve.sh"
        }
        assert step.observation and "patched" in str(step.observation.results[0].content)
        assert trajectory.extra and trajectory.extra["reward"] == 1.0
        assert trajectory.final_metrics and trajectory.final_metrics.total_prompt_tokens == 0
        assert trajectory.final_metrics.extra == {"usage_source": "none"}
        usage = ep.get_rollout_usage(rollout["rollout_id"], **backend.conn)
        assert usage["usage_source"] == "none" and usage["llm_input_tokens"] == 0

    def test_nop_scores_zero(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        rollout = backend.rollout("coding", "fix-failing-test", "nop")
        done = backend.wait(rollout["rollout_id"])
        assert done["status"] == "succeeded", "the verifier produced a reward, even if 0"
        assert done["reward_primary"] == 0.0
        raw = ep.fetch_artifact(rollout["rollout_id"], "trajectory.json", **backend.conn)
        trajectory = Trajectory.model_validate_json(raw)
        assert [s.source for s in trajectory.steps] == ["user", "agent"]
        assert trajectory.steps[1].llm_call_count == 0 and not trajectory.steps[1].tool_calls
        assert trajectory.extra and trajectory.extra["reward"] == 0.0

    def test_bundled_dataset_without_a_pool(self, backend: Backend) -> None:
        request = {
            "task_ref": {"dataset": "envpools-examples", "task_id": "fix-failing-test"},
            "agent": {"harness": "oracle"},
            "environment": {"backend": "harbor"},
            "task_app_id": "",
            "timeouts": {"agent_sec": 60},
        }
        rollout = ep.create_rollout(request=request, **backend.conn)
        assert rollout["pool_id"] is None
        assert backend.wait(rollout["rollout_id"])["reward_primary"] == 1.0

    def test_reward_json_and_missing_reward(self, backend: Backend, tmp_path: Path) -> None:
        json_task = make_task(
            tmp_path,
            "json",
            test="""
            echo '{"reward": 0.5, "accuracy": 0.75, "note": "text"}' > /logs/verifier/reward.json
        """,
        )
        silent = make_task(tmp_path, "silent", test="echo no reward here; exit 3")
        garbled = make_task(tmp_path, "garbled", test="echo lots > /logs/verifier/reward.txt")
        backend.pool(
            "p",
            local_task("json", json_task),
            local_task("silent", silent),
            local_task("garbled", garbled),
        )
        done = backend.wait(backend.rollout("p", "json")["rollout_id"])
        assert done["reward_primary"] == 0.5
        assert done["rewards"] == {"reward": 0.5, "accuracy": 0.75}
        # No verdict is an error (as Harbor counts it), not the agent's failure.
        errored = backend.wait(backend.rollout("p", "silent")["rollout_id"])
        assert errored["status"] == "error"
        assert errored["error"]["code"] == "reward_missing"
        assert "exited with code 3" in errored["error"]["message"]
        assert errored["reward_primary"] is None
        unreadable = backend.wait(backend.rollout("p", "garbled")["rollout_id"])
        assert unreadable["status"] == "error"
        assert unreadable["error"]["code"] == "reward_invalid"
        assert "does not hold a number" in unreadable["error"]["message"]

    def test_agent_failure_still_runs_the_tests(self, backend: Backend, tmp_path: Path) -> None:
        task = make_task(tmp_path, "crash", solve="echo boom; exit 7")
        backend.pool("p", local_task("crash", task))
        done = backend.wait(backend.rollout("p", "crash")["rollout_id"])
        assert done["agent_exit_code"] == 7
        assert done["status"] == "succeeded" and done["reward_primary"] == 1.0


def test_read_reward_precedence(tmp_path: Path) -> None:
    (tmp_path / "reward.txt").write_text("1\n")
    assert read_reward(tmp_path)[0] == 1.0
    (tmp_path / "reward.json").write_text('{"accuracy": 0.2}')
    assert read_reward(tmp_path)[:2] == (1.0, {"accuracy": 0.2, "reward": 1.0})
    (tmp_path / "reward.json").write_text('{"reward": 0.3}')
    assert read_reward(tmp_path)[0] == 0.3
    (tmp_path / "reward.json").unlink()
    (tmp_path / "reward.txt").write_text("")
    assert read_reward(tmp_path) == (None, {}, "reward.txt is empty")


class TestCancelAndTimeouts:
    def test_cancel_while_queued(self, backend: Backend) -> None:
        backend.pool("paused", local_task("fix-failing-test", EXAMPLE), concurrency=0)
        rollout = backend.rollout("paused", "fix-failing-test")
        cancelled = ep.cancel_rollout(rollout["rollout_id"], **backend.conn)
        assert cancelled["status"] == "cancelled"
        events = backend.events(rollout["rollout_id"])
        assert [e["data"]["status"] for e in events] == ["queued", "cancelled"]

    @pytest.mark.parametrize("phase", ["running", "verifying"])
    def test_cancel_while_running_or_verifying(
        self, backend: Backend, tmp_path: Path, phase: str
    ) -> None:
        marker = f"envpools-cancel-{phase}-{os.getpid()}"
        slow = f"exec -a {marker} sleep 60"
        task = make_task(
            tmp_path,
            "slow",
            solve=slow if phase == "running" else "true",
            test=slow if phase == "verifying" else "echo 1 > /logs/verifier/reward.txt",
        )
        backend.pool("p", local_task("slow", task))
        rollout = backend.rollout("p", "slow")
        backend.wait(rollout["rollout_id"], phase)
        deadline = time.monotonic() + 5
        while subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b"":
            assert time.monotonic() < deadline, "the slow command never started"
            time.sleep(0.05)
        started = time.monotonic()
        result = ep.cancel_rollout(rollout["rollout_id"], **backend.conn)
        assert time.monotonic() - started < 10
        assert result["status"] == "cancelled"
        assert result["error"]["code"] == "cancelled"
        leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
        assert leftover.stdout == "", "the sandbox was killed as a group"
        events = backend.events(rollout["rollout_id"])
        assert statuses(events)[-2:] == [phase, "cancelled"]
        assert ep.cancel_rollout(rollout["rollout_id"], **backend.conn)["status"] == "cancelled"

    def test_agent_timeout(self, backend: Backend, tmp_path: Path) -> None:
        marker = f"envpools-timeout-{os.getpid()}"
        task = make_task(tmp_path, "hang", solve=f"echo started; exec -a {marker} sleep 60")
        backend.pool("p", local_task("hang", task))
        started = time.monotonic()
        rollout = backend.rollout("p", "hang", timeouts={"agent_sec": 2})
        backend.wait(rollout["rollout_id"], "running")
        deadline = time.monotonic() + 5
        while subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b"":
            assert time.monotonic() < deadline, "the agent never started"
            time.sleep(0.05)
        done = backend.wait(rollout["rollout_id"])
        assert time.monotonic() - started < 15
        assert done["status"] == "failed"
        assert done["error"]["code"] == "agent_timeout"
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b""

    def test_task_toml_timeout_is_the_default(self, backend: Backend, tmp_path: Path) -> None:
        task = make_task(tmp_path, "toml", solve="sleep 30", toml="[agent]\ntimeout_sec = 1\n")
        backend.pool("p", local_task("toml", task))
        done = backend.wait(backend.rollout("p", "toml")["rollout_id"])
        assert done["error"]["code"] == "agent_timeout"

    def test_verifier_timeout(self, backend: Backend, tmp_path: Path) -> None:
        task = make_task(tmp_path, "vt", test="sleep 30")
        backend.pool("p", local_task("vt", task))
        rollout = backend.rollout("p", "vt", timeouts={"verifier_sec": 1})
        done = backend.wait(rollout["rollout_id"])
        assert done["status"] == "failed" and done["error"]["code"] == "verifier_timeout"


class TestArtifacts:
    def test_manifest_fetch_and_zip(self, backend: Backend, tmp_path: Path) -> None:
        task = make_task(
            tmp_path,
            "art",
            files={"app.py": "x = 1\n"},
            solve="""
            echo 'x = 2' > /app/app.py
            mkdir -p /logs/artifacts/reports && echo '{"ok": true}' > /logs/artifacts/reports/r.json
            ln -s /etc/passwd /logs/agent/passwd-link
            echo done
        """,
        )
        backend.pool("p", local_task("art", task))
        rid = backend.rollout("p", "art")["rollout_id"]
        backend.wait(rid)
        manifest = ep.list_rollout_artifacts(rid, **backend.conn)
        paths = [a["path"] for a in manifest["artifacts"]]
        assert {
            "agent/oracle.txt",
            "verifier/reward.txt",
            "verifier/test-stdout.txt",
            "artifacts/reports/r.json",
            "workspace.diff",
            "workspace.tar.gz",
            "result.json",
        } <= set(paths)
        assert "agent/passwd-link" not in paths, "symlinks are never artifacts"
        assert manifest["total_size_bytes"] == sum(a["size_bytes"] for a in manifest["artifacts"])
        provenance = {a["path"]: a["provenance"] for a in manifest["artifacts"]}
        assert provenance["agent/oracle.txt"] == "agent"
        assert provenance["verifier/reward.txt"] == "verifier"
        assert provenance["workspace.diff"] == "worker"
        for entry in manifest["artifacts"]:
            data = ep.fetch_artifact(rid, entry["path"], **backend.conn)
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert len(data) == entry["size_bytes"]
            assert entry["download_url"].endswith(f"/v1/rollouts/{rid}/artifacts/{entry['path']}")
        diff = ep.fetch_artifact(rid, "workspace.diff", **backend.conn).decode()
        assert "-x = 1" in diff and "+x = 2" in diff
        only_agent = ep.list_rollout_artifacts(rid, prefix="agent/", **backend.conn)
        assert {a["path"] for a in only_agent["artifacts"]} == {"agent/oracle.txt"}
        page = ep.list_rollout_artifacts(rid, limit=2, **backend.conn)
        assert len(page["artifacts"]) == 2 and page["next_cursor"]
        rest = ep.list_rollout_artifacts(rid, cursor=page["next_cursor"], **backend.conn)
        assert [a["path"] for a in page["artifacts"] + rest["artifacts"]] == sorted(paths)

        archive = zipfile.ZipFile(io.BytesIO(ep.download_artifacts_zip(rid, **backend.conn)))
        assert sorted(archive.namelist()) == sorted(paths)
        assert archive.read("artifacts/reports/r.json") == b'{"ok": true}\n'
        assert archive.testzip() is None
        small = zipfile.ZipFile(
            io.BytesIO(ep.download_artifacts_zip(rid, prefix="verifier/", **backend.conn))
        )
        assert sorted(small.namelist()) == ["verifier/reward.txt", "verifier/test-stdout.txt"]

    @pytest.mark.parametrize(
        "raw_path",
        [
            "agent/../../../../etc/passwd",
            "agent/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
            "..%2F..%2Fenvpools.db",
            "workspace/README.md",
            "baseline/README.md",
            "agent/passwd-link",
        ],
    )
    def test_paths_outside_the_trial_are_refused(
        self, backend: Backend, tmp_path: Path, raw_path: str
    ) -> None:
        task = make_task(tmp_path, "t", solve="ln -s /etc/passwd /logs/agent/passwd-link")
        backend.pool("p", local_task("t", task))
        rid = backend.rollout("p", "t")["rollout_id"]
        backend.wait(rid)
        url = httpx.URL(f"{backend.url}/v1/rollouts/{rid}/artifacts/")
        url = url.copy_with(raw_path=url.raw_path + raw_path.encode())
        response = httpx.get(url, headers={"Authorization": f"Bearer {backend.key}"})
        assert response.status_code in (400, 404), response.text
        assert "root:" not in response.text
        assert response.json()["error"]["code"] in ("invalid_path", "not_found")


class TestUsageAndReplay:
    def test_usage_priced_from_a_configured_table(self, tmp_path: Path) -> None:
        prices = tmp_path / "prices.toml"
        prices.write_text("sandbox_minute_usd = 60.0\n")  # a dollar per second
        thread = start_backend(tmp_path / "data", price_table=prices)
        try:
            _, key = thread.create_key()
            conn = {"backend_base": thread.url, "api_key": key}
            task = make_task(tmp_path, "slowish", solve="sleep 0.5")
            ep.create_pool(
                request={
                    "pool_id": "p",
                    "pool_type": "sandbox",
                    "tasks": [local_task("slowish", task).model_dump()],
                },
                **conn,
            )
            rid = ep.create_rollout(
                request={
                    "task_ref": {"dataset": "d", "task_id": "slowish"},
                    "agent": {"harness": "oracle"},
                    "pool_id": "p",
                    "task_app_id": "",
                    "timeouts": {},
                },
                **conn,
            )["rollout_id"]
            ep.RolloutHandle(rid, **conn).wait(timeout=60)
            usage = ep.get_rollout_usage(rid, **conn)
        finally:
            thread.stop()
        snapshot = ep.UsageSnapshot.model_validate(usage)
        assert snapshot.wall_time_sec and snapshot.wall_time_sec >= 0.5
        assert snapshot.sandbox_minutes and snapshot.sandbox_minutes * 60 >= 0.5
        assert snapshot.bytes_uploaded and snapshot.bytes_downloaded
        assert snapshot.provider_costs and snapshot.provider_costs["sandbox"] >= 0.5
        assert snapshot.cost_usd == pytest.approx(sum(snapshot.provider_costs.values()))

    def test_replay_and_support_bundle(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        original = backend.rollout(
            "coding",
            "fix-failing-test",
            "oracle",
            metadata={"api_token": "tok-123456", "team": "x"},
        )
        backend.wait(original["rollout_id"])
        replayed = ep.replay_rollout(
            original["rollout_id"],
            overrides={"agent": {"harness": "nop", "kind": "nop"}},
            metadata={"why": "baseline"},
            **backend.conn,
        )
        assert replayed["replay_of"] == original["rollout_id"]
        assert replayed["agent"]["harness"] == "nop"
        assert replayed["metadata"]["why"] == "baseline"
        assert backend.wait(replayed["rollout_id"])["reward_primary"] == 0.0
        bundle = ep.get_rollout_support_bundle(original["rollout_id"], **backend.conn)
        assert set(bundle) >= {"rollout", "request", "routing", "events", "artifacts", "usage"}
        assert bundle["request"]["metadata"]["api_token"] == "[REDACTED]"
        assert bundle["request"]["metadata"]["team"] == "x"
        assert bundle["events"][-1]["data"]["status"] == "succeeded"


class TestUnsupported:
    def test_other_backends_end_in_error(self, backend: Backend) -> None:
        backend.pool(
            "envs",
            ep.PoolTask.from_openenv("echo", "http://127.0.0.1:9/"),
            ep.PoolTask.from_docker("dock", "python:3.12"),
        )
        openenv = backend.wait(backend.rollout("envs", "echo")["rollout_id"])
        assert openenv["status"] == "error"
        assert openenv["error"]["code"] == "backend_unsupported"
        docker = backend.wait(backend.rollout("envs", "dock")["rollout_id"])
        assert docker["status"] == "error" and docker["error"]["code"] == "bad_task_source"
        assert "Docker" in docker["error"]["message"]

    def test_missing_agent_cli_is_an_error_with_a_reason(self, backend: Backend) -> None:
        caps = {a["name"]: a for a in ep.get_capabilities(**backend.conn)["agents"]}
        if caps["codex"]["available"]:
            pytest.skip("codex is installed here")
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        rollout = backend.rollout("coding", "fix-failing-test", "codex")
        done = backend.wait(rollout["rollout_id"])
        assert done["status"] == "error"
        assert done["error"]["code"] == "harness_unavailable"
        assert "not installed" in done["error"]["message"]


def test_concurrency_limits_running_rollouts(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "slow", solve="sleep 1")
    backend.pool("p", local_task("slow", task), concurrency=1)
    ids = [backend.rollout("p", "slow")["rollout_id"] for _ in range(3)]
    peak = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = ep.get_pool_metrics("p", **backend.conn)
        peak = max(peak, metrics["running"])
        if metrics["succeeded"] == 3:
            break
        time.sleep(0.05)
    assert peak == 1
    assert ep.get_pool_metrics("p", **backend.conn)["success_rate"] == 1.0
    docs = [ep.get_rollout(i, **backend.conn) for i in ids]
    starts = sorted(d["started_at"] for d in docs)
    assert [d["started_at"] for d in docs] == starts, "FIFO within a priority"


def test_priority_runs_first(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "quick")
    backend.pool("p", local_task("quick", task), concurrency=0)
    low = backend.rollout("p", "quick", priority=0)["rollout_id"]
    high = backend.rollout("p", "quick", priority=10)["rollout_id"]
    ep.update_pool("p", request={"concurrency": 1}, **backend.conn)
    backend.wait(low)
    docs = {i: ep.get_rollout(i, **backend.conn) for i in (low, high)}
    assert docs[high]["started_at"] < docs[low]["started_at"]


def test_cancel_while_starting(backend: Backend) -> None:
    """A cancel that lands while the workspace is being prepared ends the rollout there."""
    from envpools_cli.server.scheduling.reporting import StoreReporter, trial_input
    from envpools_cli.server.trial.runner import RolloutRunner

    backend.pool("paused", local_task("fix-failing-test", EXAMPLE), concurrency=0)
    rid = backend.rollout("paused", "fix-failing-test")["rollout_id"]
    server = backend.thread.backend
    assert server.scheduler._claim(rid), "queued -> starting"
    ctx = server.ctx
    runner = RolloutRunner(trial_input(ctx, rid), ctx.site, StoreReporter(ctx, rid))
    runner.cancel.set()
    runner.run()
    done = ep.get_rollout(rid, **backend.conn)
    assert done["status"] == "cancelled" and done["started_at"] is None
    events = backend.events(rid)
    assert statuses(events) == ["starting", "cancelled"]
    assert not any(e["event"] == "agent" for e in events), "the agent never ran"
