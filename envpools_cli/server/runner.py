"""One rollout from ``starting`` to its terminal status.

Phases: seed the workspace from the Harbor task, run the agent (harness) in the
sandbox, run ``tests/test.sh`` in the sandbox with ``/tests`` bound, read the reward,
then index the artifacts, price the usage and publish the terminal lifecycle event,
always last, after the rollout document already shows the final status.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from envpools_cli.server.agent_installs import tool_path_tree
from envpools_cli.server.agent_launch import agent_failure, prepare_agent
from envpools_cli.server.artifacts import index_trial, workspace_diff, workspace_tarball
from envpools_cli.server.context import ServerContext
from envpools_cli.server.harnesses import AgentContext, Harness, harness_class
from envpools_cli.server.sandbox import Mount, RunResult, SandboxSpec
from envpools_cli.server.store import now_iso
from envpools_cli.server.tasks import HarborTask, TaskError, load_task
from envpools_cli.server.usage import usage_snapshot

__all__ = ["RolloutRunner", "read_reward"]

log = logging.getLogger("envpools.server.runner")

_REDACTED = "[REDACTED]"


class Cancelled(Exception):
    pass


@dataclass
class Outcome:
    status: str
    error: dict[str, Any] | None = None
    reward_primary: float | None = None
    rewards: dict[str, float] = field(default_factory=dict)


def read_reward(folder: Path) -> tuple[float | None, dict[str, float], str | None]:
    """(primary reward, all rewards, problem): reward.json wins, reward.txt fills ``reward``."""
    rewards: dict[str, float] = {}
    problem = None
    json_file, txt_file = folder / "reward.json", folder / "reward.txt"
    if json_file.is_file() and not json_file.is_symlink():
        try:
            loaded = json.loads(json_file.read_text())
        except ValueError as exc:
            loaded, problem = None, f"reward.json is not valid JSON: {exc}"
        if isinstance(loaded, dict):
            for key, value in loaded.items():
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and (value == value and abs(value) != float("inf"))
                ):
                    rewards[str(key)] = float(value)
        elif isinstance(loaded, int | float) and not isinstance(loaded, bool):
            rewards["reward"] = float(loaded)
    if "reward" not in rewards and txt_file.is_file() and not txt_file.is_symlink():
        text = txt_file.read_text(errors="replace").strip()
        try:
            rewards["reward"] = float(text.split()[0]) if text else float("nan")
        except ValueError:
            problem = f"reward.txt does not hold a number: {text[:80]!r}"
        if rewards.get("reward") != rewards.get("reward"):  # NaN: empty file
            rewards.pop("reward")
            problem = "reward.txt is empty"
    if not rewards:
        return None, {}, problem
    primary = rewards.get("reward", next(iter(rewards.values())))
    return primary, rewards, None


def _folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


class _LineSink:
    """Writes a phase's output to its log file and publishes each line as an event."""

    def __init__(
        self, runner: RolloutRunner, event: str, log_file: Path, parse: Any = None
    ) -> None:
        self.runner = runner
        self.event = event
        self.parse = parse
        self.count = 0
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.handle: TextIO = log_file.open("a", encoding="utf-8")

    def __call__(self, line: str) -> None:
        line = self.runner.redact(line)
        self.count += 1
        self.handle.write(line + "\n")
        data = self.parse(line) if self.parse else {"text": line}
        data = {"line": self.count, **data}
        self.runner.ctx.publish(self.runner.rollout_id, self.event, data)

    def close(self) -> None:
        self.handle.close()


class RolloutRunner:
    def __init__(self, ctx: ServerContext, rollout_id: str) -> None:
        self.ctx = ctx
        self.rollout_id = rollout_id
        self.cancel = threading.Event()
        self.shutting_down = False
        self.sandbox_sec = 0.0
        self.bytes_uploaded = 0
        self.harness: Harness | None = None
        self.secrets: list[str] = []
        self.trial = ctx.trial_dir(rollout_id)
        self.started = time.monotonic()
        doc = ctx.store.get_rollout(rollout_id)
        request = ctx.store.get_request(rollout_id)
        if doc is None or request is None:
            raise KeyError(rollout_id)
        self.doc = doc
        self.request = request

    # --- helpers --------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _REDACTED)
        return text

    def note(self, message: str, **extra: Any) -> None:
        self.ctx.publish(
            self.rollout_id,
            "lifecycle",
            {"status": self.doc["status"], "message": message, **extra},
        )

    def transition(self, status: str, **changes: Any) -> None:
        previous = self.doc["status"]
        self.doc = self.ctx.store.update_rollout(self.rollout_id, status=status, **changes)
        self.ctx.publish(self.rollout_id, "lifecycle", {"status": status, "previous": previous})

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    # --- the run --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            outcome = self._execute()
        except Cancelled:
            if self.shutting_down:
                outcome = Outcome(
                    "error",
                    {
                        "code": "backend_restarted",
                        "message": "the local backend stopped while this "
                        "rollout was running; it was not finished",
                    },
                )
            else:
                outcome = Outcome(
                    "cancelled", {"code": "cancelled", "message": "cancelled by request"}
                )
        except TaskError as exc:
            outcome = Outcome("error", {"code": exc.code, "message": exc.message})
        except Exception as exc:
            log.exception("rollout %s failed inside the backend", self.rollout_id)
            outcome = Outcome(
                "error", {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
            )
        self.finish(outcome)

    def _task(self) -> HarborTask:
        source = self.doc.get("task_source") or {}
        backend = source.get("backend", "harbor")
        if backend != "harbor":
            raise TaskError(
                "backend_unsupported",
                f"the local backend cannot run {backend!r} tasks; it runs Harbor-format task "
                "directories (data_source {type: local, path})",
            )
        path = source.get("path")
        if not path:
            reason = source.get("reason") or "the task has no local path"
            raise TaskError("bad_task_source", reason)
        return load_task(path)

    def _execute(self) -> Outcome:
        task = self._task()
        workspace, baseline = self.trial / "workspace", self.trial / "baseline"
        for name in ("agent", "verifier", "artifacts"):
            (self.trial / name).mkdir(parents=True, exist_ok=True)
        for message in task.seed_workspace(workspace):
            self.note(message)
        shutil.copytree(workspace, baseline, symlinks=True, dirs_exist_ok=True)
        self.bytes_uploaded = _folder_size(workspace)
        if self.ctx.driver_warning:
            self.note(self.ctx.driver_warning, warning=True)
        self.check_cancel()

        agent = dict(self.doc.get("agent") or {})
        name = str(agent.get("harness") or agent.get("kind") or "")
        cls = harness_class(name)
        if cls is None:
            raise TaskError("harness_unavailable", f"unknown harness {name!r}")
        status = self.ctx.agents.availability(name, cls.binary)
        if not status.available:
            raise TaskError(
                "harness_unavailable", f"harness {name!r} cannot run here: {status.reason}"
            )
        self.harness = harness = cls()
        context = AgentContext(
            instruction=task.instruction,
            workdir=task.workdir,
            agent=agent,
            task=task,
            credentials=self.ctx.store.credential_values(self.doc["org_id"]),
        )
        if missing := harness.required_secret(context):
            raise TaskError("credentials_missing", f"harness {name!r}: {missing}")

        self.transition("running", started_at=now_iso())
        agent_timeout = self._timeout(
            "agent_sec", task.agent_timeout_sec, self.ctx.settings.default_agent_timeout_sec
        )
        launch = prepare_agent(
            harness,
            context,
            self.ctx.agents,
            isolated=self.ctx.driver.isolated,
            host_path=self.ctx.search_path,
        )
        try:
            self.secrets = launch.secrets
            mounts = [
                Mount(self.trial / "agent", "/logs/agent", writable=True),
                Mount(self.trial / "artifacts", "/logs/artifacts", writable=True),
                *launch.mounts,
            ]
            if launch.bind_solution:
                mounts.append(Mount(task.solution_dir, "/solution"))
            spec = self._spec(
                task,
                workspace,
                launch.command,
                mounts,
                {**task.layout.env, **launch.env},
                launch.network,
                launch.stdin,
            )
            log_file = self.trial / "agent" / harness.log_name
            sink = _LineSink(self, "agent", log_file, harness.on_line)
            result = self._phase(spec, agent_timeout, sink)
        finally:
            launch.close()
        if result.timed_out:
            return Outcome(
                "failed",
                {
                    "code": "agent_timeout",
                    "message": f"the agent did not finish within {agent_timeout:g}s",
                },
            )
        self.doc = self.ctx.store.update_rollout(self.rollout_id, agent_exit_code=result.exit_code)
        if failure := agent_failure(harness, result, launch):
            return Outcome("error", failure)
        if result.exit_code:
            (self.trial / "agent" / "exit-code.txt").write_text(f"{result.exit_code}\n")
            self.note(f"the agent exited with code {result.exit_code}; running the tests anyway")
        return self._verify(task, workspace)

    def _verify(self, task: HarborTask, workspace: Path) -> Outcome:
        self.check_cancel()
        self.transition("verifying")
        timeout = self._timeout(
            "verifier_sec",
            task.verifier_timeout_sec,
            self.ctx.settings.default_verifier_timeout_sec,
        )
        mounts = [
            Mount(task.tests_dir, "/tests"),
            Mount(self.trial / "agent", "/logs/agent", writable=True),
            Mount(self.trial / "verifier", "/logs/verifier", writable=True),
            Mount(self.trial / "artifacts", "/logs/artifacts", writable=True),
        ]
        spec = self._spec(
            task,
            workspace,
            ["/bin/bash", "/tests/test.sh"],
            mounts,
            {**task.layout.env, **task.verifier_env},
            task.verifier_network,
            None,
        )
        sink = _LineSink(self, "verifier", self.trial / "verifier" / "test-stdout.txt")
        result = self._phase(spec, timeout, sink)
        if result.timed_out:
            return Outcome(
                "failed",
                {
                    "code": "verifier_timeout",
                    "message": f"tests/test.sh did not finish within {timeout:g}s",
                },
            )
        primary, rewards, problem = read_reward(self.trial / "verifier")
        if primary is None:
            message = problem or (
                f"tests/test.sh exited with code {result.exit_code} without "
                "writing /logs/verifier/reward.txt or reward.json"
            )
            return Outcome("failed", {"code": "reward_missing", "message": message})
        self.ctx.publish(
            self.rollout_id,
            "reward",
            {"reward": primary, "rewards": rewards, "test_exit_code": result.exit_code},
        )
        return Outcome("succeeded", reward_primary=primary, rewards=rewards)

    def _phase(self, spec: SandboxSpec, timeout: float, sink: _LineSink) -> RunResult:
        """Run one sandboxed phase to its end; a cancel raises, a timeout is returned."""
        try:
            result = self.ctx.driver.run(spec, timeout=timeout, cancel=self.cancel, on_line=sink)
        finally:
            sink.close()
        self.sandbox_sec += result.duration_sec
        if result.cancelled:
            raise Cancelled()
        return result

    def _timeout(self, key: str, from_task: float | None, default: int) -> float:
        requested = (self.doc.get("timeouts") or {}).get(key)
        if isinstance(requested, int | float) and requested > 0:
            return float(requested)
        return from_task if from_task else float(default)

    def _spec(
        self,
        task: HarborTask,
        workspace: Path,
        command: list[str],
        mounts: list[Mount],
        env: dict[str, str],
        network: bool,
        stdin: bytes | None,
    ) -> SandboxSpec:
        taken = {m.target for m in mounts}
        extra = [m for m in tool_path_tree(self.ctx.tool_paths).mounts if m.target not in taken]
        if self.ctx.tool_paths:
            env = {"PATH": self.ctx.search_path, **env}
        resources = self.doc.get("resources") or {}
        memory = resources.get("memory_mb") or task.memory_mb
        return SandboxSpec(
            command=command,
            workspace=workspace,
            workdir=task.workdir,
            mounts=mounts + extra,
            env=env,
            network=network,
            memory_mb=int(memory) if memory else None,
            stdin=stdin,
        )

    # --- the end --------------------------------------------------------------------------

    def _outputs(self) -> None:
        workspace, baseline = self.trial / "workspace", self.trial / "baseline"
        if not workspace.is_dir():
            return
        try:
            (self.trial / "workspace.diff").write_text(workspace_diff(baseline, workspace))
            workspace_tarball(workspace, self.trial / "workspace.tar.gz")
        except OSError as exc:
            log.warning("rollout %s: could not save the workspace: %s", self.rollout_id, exc)

    def _result_json(self, outcome: Outcome, usage: dict[str, Any]) -> None:
        result = {
            "schema_version": 1,
            "id": self.rollout_id,
            "task_name": (self.doc.get("task_ref") or {}).get("task_id"),
            "agent_info": {
                "name": (self.doc.get("agent") or {}).get("harness"),
                "model_info": {"name": (self.doc.get("agent") or {}).get("model_id")},
            },
            "agent_result": {
                "n_input_tokens": usage["llm_input_tokens"],
                "n_cache_tokens": usage["llm_cache_tokens"],
                "n_output_tokens": usage["llm_output_tokens"],
                "cost_usd": usage["cost_usd"],
            },
            "verifier_result": {"rewards": outcome.rewards} if outcome.rewards else None,
            "exception_info": outcome.error,
            "status": outcome.status,
            "started_at": self.doc.get("started_at"),
            "finished_at": now_iso(),
        }
        if self.trial.is_dir():
            (self.trial / "result.json").write_text(json.dumps(result, indent=2))

    def finish(self, outcome: Outcome) -> None:
        self._outputs()
        wall = time.monotonic() - self.started
        tokens = self.harness.usage if self.harness else None
        usage = usage_snapshot(
            self.rollout_id,
            wall_time_sec=wall,
            sandbox_sec=self.sandbox_sec,
            bytes_uploaded=self.bytes_uploaded,
            bytes_downloaded=0,
            tokens=tokens,
            prices=self.ctx.prices,
        )
        self._result_json(outcome, usage)
        entries = index_trial(self.trial) if self.trial.is_dir() else []
        usage["bytes_downloaded"] = sum(e["size_bytes"] for e in entries)
        self.ctx.store.put_artifacts(self.rollout_id, entries)
        previous = self.doc["status"]
        self.doc = self.ctx.store.update_rollout(
            self.rollout_id,
            status=outcome.status,
            finished_at=now_iso(),
            error=outcome.error,
            reward_primary=outcome.reward_primary,
            rewards=outcome.rewards or None,
            usage=usage,
        )
        data: dict[str, Any] = {
            "status": outcome.status,
            "previous": previous,
            "reward_primary": outcome.reward_primary,
        }
        if outcome.error:
            data["error"] = outcome.error
        self.ctx.publish(self.rollout_id, "lifecycle", data)
