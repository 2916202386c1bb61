"""One rollout from ``starting`` to its terminal status.

Phases: seed the workspace from the Harbor task, run the agent (harness) in the
sandbox, run ``tests/test.sh`` in the sandbox with ``/tests`` bound, read the reward,
then collect the artifacts (diff, tarball, trajectory, index), price the usage and
publish the terminal lifecycle event, always last, after the rollout document already
shows the final status.

Everything the sandbox wrote is hostile input: the backend reads and writes the trial's
``/logs`` folders and workspace only through ``safefs`` (no link followed, no FIFO
opened), keeps a bounded share of the output as events, stops a sandbox that fills the
disk, and collects artifacts in a thread of its own with a deadline; ``cancel`` ends
the rollout at any stage, the finishing step included.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli.server.agents import AgentContext, Harness, harness_class
from envpools_cli.server.agents.installs import tool_path_tree
from envpools_cli.server.sandbox.drivers import Mount, RunResult, SandboxSpec, SandboxUser
from envpools_cli.server.sandbox.exchanges import EXCHANGES_FILE, read_exchanges
from envpools_cli.server.sandbox.images import Stop
from envpools_cli.server.sandbox.limits import Limits, resolve_limits
from envpools_cli.server.sandbox.provider_watch import ProviderWatch, Verdict
from envpools_cli.server.sandbox.safefs import (
    MAX_DEPTH,
    MAX_ENTRIES,
    Walk,
    chown_tree,
    open_dir,
    tree_usage,
    write_at,
)
from envpools_cli.server.state.exhaustion import disk_full, exhaustion, free_bytes
from envpools_cli.server.state.store import now_iso
from envpools_cli.server.tasks import HarborTask, TaskError, expand_env, load_task
from envpools_cli.server.trial.agent_launch import AgentLaunch, agent_failure, prepare_agent
from envpools_cli.server.trial.artifacts import TrialIndex, index_trial
from envpools_cli.server.trial.environment import (
    ImageUnavailable,
    Prepared,
    fallback_problem,
    prepare_environment,
)
from envpools_cli.server.trial.phase_log import PhaseLog
from envpools_cli.server.trial.reporter import TrialInput, TrialReporter
from envpools_cli.server.trial.rewards import read_reward
from envpools_cli.server.trial.scrub import Scrubber
from envpools_cli.server.trial.site import TrialSite
from envpools_cli.server.trial.trajectory import (
    LlmAccount,
    account,
    build_trajectory,
    write_trajectory,
)
from envpools_cli.server.trial.usage import usage_snapshot
from envpools_cli.server.trial.workspace_outputs import Stopped, write_diff, write_tarball

__all__ = ["Outcome", "RolloutRunner", "read_reward", "runner_lost"]

log = logging.getLogger("envpools.server.runner")

_LOG_DIRS = ("agent", "verifier", "artifacts")
#: Less free than this after a phase: the disk filled while it ran.
_FULL_BELOW = 1024 * 1024


class Cancelled(Exception):
    pass


class _PhaseStop(threading.Event):
    """What stops the agent phase: the rollout's cancel, or the provider's verdict (the
    gateway's ``ProviderWatch``), as the sandbox's watchdog polls it."""

    def __init__(self, cancel: threading.Event, watch: ProviderWatch | None) -> None:
        super().__init__()
        self.cancel = cancel
        self.watch = watch

    def is_set(self) -> bool:
        return self.cancel.is_set() or (self.watch is not None and self.watch.decided())


@dataclass
class Outcome:
    status: str
    error: dict[str, Any] | None = None
    reward_primary: float | None = None
    rewards: dict[str, float] = field(default_factory=dict)


def _regular_bytes(root: Path) -> int:
    try:
        fd = open_dir(root)
    except OSError:
        return 0
    try:
        return sum(entry.info.st_size for entry in Walk(fd) if entry.is_file)
    finally:
        os.close(fd)


def _credential(credentials: dict[str, tuple[str, str]], wanted: str) -> str | None:
    """A stored credential by name, else by type."""
    if wanted in credentials and credentials[wanted][1]:
        return credentials[wanted][1]
    return next((v for t, v in credentials.values() if t == wanted and v), None)


def runner_lost(detail: str) -> Outcome:
    """The end of a rollout whose trial the backend lost (``runner_lost``)."""
    return Outcome(
        "error",
        {"code": "runner_lost", "message": f"the backend lost this rollout's runner: {detail}"},
    )


class RolloutRunner:
    """One trial from its inputs, on a site (a machine), reporting what happens."""

    def __init__(self, trial: TrialInput, site: TrialSite, reporter: TrialReporter) -> None:
        self.input = trial
        self.site = site
        self.reporter = reporter
        self.settings = trial.settings
        rollout_id = self.rollout_id = trial.rollout_id
        self.cancel = threading.Event()
        self.stop_collecting = threading.Event()
        self.shutting_down = False
        self.sandbox_sec = 0.0
        self.bytes_uploaded = 0
        self.harness: Harness | None = None
        self.instruction = ""
        self.agent_version: str | None = None
        self._llm: LlmAccount | None = None
        self.scrubber = Scrubber()
        self.limits: Limits = trial.settings.limits
        self.trial = site.trial_dir(rollout_id)
        self.started = time.monotonic()
        self.ended = False
        self._end_lock = threading.Lock()
        self.user: SandboxUser | None = None
        self.image: str | None = None
        """The task's image, with a driver that runs one."""
        self.workdir = "/app"
        self.doc = dict(trial.doc)

    # --- helpers --------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return self.scrubber.text(text)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """An event, unless the rollout already ended (its terminal event is the last)."""
        with self._end_lock:
            if not self.ended:
                self.reporter.event(event, data)

    def note(self, message: str, **extra: Any) -> None:
        self.publish(
            "lifecycle", {"status": self.doc["status"], "message": self.redact(message), **extra}
        )

    def transition(self, status: str, **changes: Any) -> None:
        with self._end_lock:
            if self.ended:
                raise Cancelled()
            previous = self.doc["status"]
            self.doc = self.reporter.update(status=status, **changes)
            self.reporter.event("lifecycle", {"status": status, "previous": previous})

    @property
    def _where(self) -> str:
        """``here``, or the node a trial runs on when that is another machine."""
        node = self.site.node
        return "here" if node.get("node_id") in (None, "local") else f"on node {node.get('name')}"

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def _give(self, path: Path) -> None:
        """Hand a folder the backend built to the sandbox's user (when that is another uid)."""
        if self.user is not None and self.user.switches:
            chown_tree(path, self.user.uid, self.user.gid)

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
            outcome = Outcome("error", {"code": exc.code, "message": self.redact(exc.message)})
        except Exception as exc:
            outcome = self._failure(exc)
        finally:
            if self.user is not None:  # its sandboxes are gone: the uid is free again
                self.site.release_sandbox_user(self.user)
        try:
            self.finish(outcome)
        except Exception as exc:
            log.error("rollout %s: finishing failed: %s", self.rollout_id, exc)
        finally:
            if not self.ended:  # whatever failed while finishing, the rollout ends
                self.end(outcome)

    def _failure(self, exc: Exception) -> Outcome:
        """What ends a rollout that failed inside the backend: the machine running out of
        disk or files said as such, anything else ``internal`` (with its traceback logged)."""
        if (found := exhaustion(exc, self.site.trials_dir)) is not None:
            log.warning("rollout %s: %s", self.rollout_id, found.message)
            return Outcome("error", found.as_error())
        log.exception("rollout %s failed inside the backend", self.rollout_id)
        return Outcome(
            "error", {"code": "internal", "message": self.redact(f"{type(exc).__name__}: {exc}")}
        )

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
        task = load_task(path)
        # The pool task's env_vars, as written: over the Dockerfile's ENV, under what a phase
        # sets itself (task.toml's [verifier.env], the harness's variables).
        task.layout.env.update(source.get("env_vars") or {})
        return task

    def _prepare(self, task: HarborTask) -> Path:
        """The trial folder: the seeded workspace (and its baseline copy) and /logs folders."""
        self.trial.mkdir(parents=True, exist_ok=True)
        os.chmod(self.trial, 0o700)
        self.user = self.site.take_sandbox_user()
        workspace, baseline = self.trial / "workspace", self.trial / "baseline"
        for name in _LOG_DIRS:
            (self.trial / name).mkdir(exist_ok=True)
        try:
            prepared = self._environment(task, workspace)
            notes, self.image, self.workdir = prepared.notes, prepared.image, prepared.workdir
            shutil.copytree(workspace, baseline, symlinks=True, dirs_exist_ok=True)
        except Stop:
            raise Cancelled() from None
        except (OSError, shutil.Error) as exc:
            self._exhausted(exc)
            raise TaskError("bad_task_source", f"could not lay out the workspace: {exc}") from None
        for message in notes:
            self.note(message)
        self.bytes_uploaded = _regular_bytes(workspace)
        for name in ("workspace", *_LOG_DIRS):
            self._give(self.trial / name)
        return workspace

    def _environment(self, task: HarborTask, workspace: Path) -> Prepared:
        """The workspace (and image) on this site's driver; under ``auto``, a task whose
        image cannot be had runs with bubblewrap instead when it can (``fallback_problem``),
        and says so: an ``environment`` event and the rollout's ``sandbox`` field."""
        try:
            prepared = self._prepare_on(task, workspace)
        except ImageUnavailable as exc:
            if not self.site.may_fall_back:
                raise
            why_not = fallback_problem(task)
            site, problem = self.site.fallback() if why_not is None else (None, why_not)
            if site is None:
                raise TaskError("image_unavailable", self.redact(exc.refusal(problem))) from None
            reason = exc.summary
            if self.user is not None:  # the uid goes back to the site that gave it
                self.site.release_sandbox_user(self.user)
                self.user = None
            self.site = site
            self.user = site.take_sandbox_user()
            shutil.rmtree(workspace, ignore_errors=True)
            self.publish(
                "environment",
                {
                    "message": f"{reason}. This rollout runs with bubblewrap over the "
                    "host's tools instead (sandbox auto; with --sandbox container it would "
                    "end with image_unavailable)",
                    "driver": site.driver.name,
                    "fallback_from": "container",
                    "image": exc.image,
                    "reason": reason,
                },
            )
            prepared = self._prepare_on(task, workspace)
            record: dict[str, Any] = {
                "driver": site.driver.name,
                "fallback_from": "container",
                "reason": reason,
            }
        else:
            record = {"driver": self.site.driver.name}
            if prepared.image:
                record["image"] = prepared.image
            elif self.site.driver_note:
                record["reason"] = self.site.driver_note
        self.doc = self.reporter.update(sandbox=record)
        return prepared

    def _prepare_on(self, task: HarborTask, workspace: Path) -> Prepared:
        return prepare_environment(
            self.site.driver,
            task,
            workspace,
            events=self,
            build_log=self.trial / "build.log",
            limits=self.limits,
            cancel=self.cancel,
            owner=self.site.owner,
        )

    def _stage(self, source: Path, name: str) -> Path:
        """A copy of a task folder (tests/, solution/) for a phase to see read-only.

        A copy owned by the sandbox's user, so the task's own file modes or the
        location of its folder never keep the sandbox from reading it.
        """
        target = self.trial / "task" / name
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(exist_ok=True)
        try:
            shutil.copytree(source, target, symlinks=True)
        except (OSError, shutil.Error) as exc:
            self._exhausted(exc)
            raise TaskError(
                "bad_task_source", f"could not copy the task's {name}/: {exc}"
            ) from None
        self._give(target)
        return target

    def _exhausted(self, exc: BaseException) -> None:
        """A full disk or no file left is the machine's doing, not the task's: raise it so."""
        if (found := exhaustion(exc, self.site.trials_dir)) is not None:
            raise found from None

    def _watch(self) -> list[Path]:
        return [self.trial / "workspace", *(self.trial / name for name in _LOG_DIRS)]

    def _storage_outcome(self) -> Outcome:
        return Outcome(
            "failed",
            {
                "code": "storage_limit",
                "message": f"the sandbox wrote more than {self.limits.storage_mb} MB to its "
                f"workspace and /logs (storage_mb), more than {MAX_ENTRIES:,} files, or "
                f"folders deeper than {MAX_DEPTH}; it was stopped",
            },
        )

    def _memory_outcome(self, result: RunResult, who: str) -> Outcome:
        peak = f" (at most {result.memory_peak_mb} MB)" if result.memory_peak_mb else ""
        return Outcome(
            "failed",
            {
                "code": "memory_limit",
                "message": f"{who} went over the sandbox's memory limit of "
                f"{self.limits.memory_mb} MB{peak}: the kernel killed "
                f"{result.oom_kills} process(es) and it ended with code {result.exit_code}; "
                "raise [environment] memory_mb in task.toml (or the pool task's resources)",
                "oom_kills": result.oom_kills,
                "memory_mb": self.limits.memory_mb,
            },
        )

    def _memory_note(self, result: RunResult, who: str) -> None:
        """Processes killed for memory while the command itself went on: say so."""
        if result.oom_kills:
            self.note(
                f"{who}: the kernel killed {result.oom_kills} process(es) that went over the "
                f"sandbox's memory limit of {self.limits.memory_mb} MB (memory_mb)",
                warning=True,
                oom_kills=result.oom_kills,
            )

    def _under_load_outcome(self, result: RunResult, who: str, timeout: float) -> Outcome:
        """A timeout while the machine was saturated: the machine's doing, worth a retry."""
        details = result.load_details()
        share = details["cpu_wait_share"] or 0.0
        whose = "its processes" if details["measured"] == "sandbox" else "this machine's tasks"
        return Outcome(
            "error",
            {
                "code": "timeout_under_load",
                "message": f"{who} did not finish within {timeout:g}s while the machine was "
                f"saturated: {whose} waited for a CPU {share:.0%} of that time. Run it again "
                "(jobs resume --retry-errors); run fewer at once (-n, --max-running), or "
                "reserve more per rollout ([environment] cpus)",
                "under_load": True,
                "load": details,
            },
        )

    def _execute(self) -> Outcome:
        task = self._task()
        self.limits, notes = resolve_limits(
            task.environment,
            self.doc.get("resources"),
            defaults=self.settings.limits,
            maxima=self.settings.limit_maxima,
        )
        for message in notes:
            self.note(message)
        credentials = self.input.credentials
        unreadable = self.input.credentials_problem
        if unreadable:  # a task that needs none still runs
            self.note(f"stored credentials cannot be read: {unreadable}", warning=True)
        self.scrubber = Scrubber(value for _, value in credentials.values())
        workspace = self._prepare(task)
        if self.site.driver_warning:
            self.note(self.site.driver_warning, warning=True)
        self.check_cancel()

        agent = dict(self.doc.get("agent") or {})
        name = str(agent.get("harness") or agent.get("kind") or "")
        cls = harness_class(name, self.site.agents.agents_dir)
        if cls is None:
            raise TaskError("harness_unavailable", f"unknown harness {name!r}")
        status = self.site.agents.availability_of(cls)
        if not status.available:
            raise TaskError(
                "harness_unavailable", f"harness {name!r} cannot run {self._where}: {status.reason}"
            )
        self.harness = harness = cls()
        self.instruction, self.agent_version = task.instruction, status.version
        context = AgentContext(
            instruction=task.instruction,
            workdir=self.workdir,
            agent=agent,
            task=task,
            credentials=credentials,
        )
        if missing := harness.required_secret(context):
            if unreadable:
                raise TaskError("credentials_unreadable", f"harness {name!r}: {unreadable}")
            raise TaskError("credentials_missing", f"harness {name!r}: {missing}")

        self.transition(
            "running", started_at=now_iso(), limits=self.limits.describe(), node=self.site.node
        )
        agent_timeout = self._timeout(
            "agent_sec", task.agent_timeout_sec, self.settings.default_agent_timeout_sec
        )
        launch = prepare_agent(
            harness,
            context,
            self.site.agents,
            isolated=self.site.driver.isolated,
            host_path=self.site.search_path,
            forwarder_inside=self.site.driver.egress_in_sandbox,
            exchanges=self._exchanges_file(),
            provider_timeout=self.settings.provider_timeout_sec,
        )
        watch = launch.gateway.watch if launch.gateway is not None else None
        try:
            env = {**task.layout.env, **launch.env}
            from_task = {k: env[k] for k in task.solution_env if k in launch.env}
            env.update(self._expand(from_task, "solution.env", credentials))
            self.scrubber = self.scrubber.add(*launch.secrets)
            mounts = [
                Mount(self.trial / "agent", "/logs/agent", writable=True),
                Mount(self.trial / "artifacts", "/logs/artifacts", writable=True),
                *launch.mounts,
            ]
            if launch.bind_solution:
                mounts.append(Mount(self._stage(task.solution_dir, "solution"), "/solution"))
            spec = self._spec(
                task, workspace, launch.command, mounts, env, launch.network, launch.stdin
            )
            spec.egress_socket = launch.egress_socket
            log_file = self.trial / "agent" / harness.log_name
            sink = PhaseLog(self, "agent", log_file, self.limits, harness.read_line)
            result = self._phase(spec, agent_timeout, sink, _PhaseStop(self.cancel, watch))
        finally:
            launch.close()
        if result.storage_exceeded:
            return self._storage_outcome()
        if result.memory_exceeded:
            return self._memory_outcome(result, "the agent")
        verdict = self._provider_verdict(watch, result, harness, launch) if watch else None
        if verdict is not None:
            return self._provider_outcome(verdict)
        if result.timed_out:
            if result.under_load:
                return self._under_load_outcome(result, "the agent", agent_timeout)
            return Outcome(
                "failed",
                {
                    "code": "agent_timeout",
                    "message": f"the agent did not finish within {agent_timeout:g}s",
                },
            )
        self._memory_note(result, "the agent")
        self.doc = self.reporter.update(agent_exit_code=result.exit_code)
        if failure := agent_failure(harness, result, launch):
            return Outcome("error", failure)
        if result.exit_code:
            self._exit_code_file(result.exit_code)
            self.note(f"the agent exited with code {result.exit_code}; running the tests anyway")
        return self._verify(task, workspace, credentials)

    def _provider_verdict(
        self, watch: ProviderWatch, result: RunResult, harness: Harness, launch: AgentLaunch
    ) -> Verdict | None:
        """The provider's failure that ended the agent phase: the gateway stopped it, or
        the agent gave up (exited in failure, or without doing anything) right after one."""
        if result.cancelled:
            return watch.verdict()
        if result.timed_out:
            return None
        if result.exit_code or agent_failure(harness, result, launch) is not None:
            return watch.verdict(final=True)
        return None

    def _provider_outcome(self, verdict: Verdict) -> Outcome:
        error = verdict.as_error()
        for key in ("message", "hint", "provider_message"):
            error[key] = self.redact(str(error[key]))
        for failure in error["provider_failures"]:
            failure["message"] = self.redact(str(failure["message"]))
        self.note(
            f"the gateway ended the agent: {error['message']}",
            warning=True,
            provider_failures=error["provider_failures"],
        )
        return Outcome("error", error)

    def _exchanges_file(self) -> Path | None:
        """Where the gateway records the agent's LLM calls, unless the pool says not to."""
        if not self.input.record_llm_exchanges:
            return None
        folder = self.trial / EXCHANGES_FILE.rpartition("/")[0]
        folder.mkdir(mode=0o700, exist_ok=True)
        return self.trial / EXCHANGES_FILE

    def _expand(
        self, values: dict[str, str], section: str, credentials: dict[str, tuple[str, str]]
    ) -> dict[str, str]:
        env, secrets, notes = expand_env(values, section, lambda n: _credential(credentials, n))
        self.scrubber = self.scrubber.add(*secrets)
        for message in notes:
            self.note(message)
        return env

    def _exit_code_file(self, code: int) -> None:
        """Harbor's ``agent/exit-code.txt``, replacing whatever the agent left by that name."""
        try:
            folder = open_dir(self.trial / "agent")
        except OSError:
            return
        try:
            write_at(folder, "exit-code.txt", [f"{code}\n".encode()])
        except OSError as exc:
            self.note(f"could not write agent/exit-code.txt: {exc.strerror or exc}")
        finally:
            os.close(folder)

    def _verify(
        self, task: HarborTask, workspace: Path, credentials: dict[str, tuple[str, str]]
    ) -> Outcome:
        self.check_cancel()
        self.transition("verifying")
        timeout = self._timeout(
            "verifier_sec",
            task.verifier_timeout_sec,
            self.settings.default_verifier_timeout_sec,
        )
        mounts = [
            Mount(self._stage(task.tests_dir, "tests"), "/tests"),
            Mount(self.trial / "agent", "/logs/agent", writable=True),
            Mount(self.trial / "verifier", "/logs/verifier", writable=True),
            Mount(self.trial / "artifacts", "/logs/artifacts", writable=True),
        ]
        env = {**task.layout.env, **self._expand(task.verifier_env, "verifier.env", credentials)}
        spec = self._spec(
            task,
            workspace,
            ["/bin/bash", "/tests/test.sh"],
            mounts,
            env,
            task.verifier_network,
            None,
        )
        sink = PhaseLog(self, "verifier", self.trial / "verifier" / "test-stdout.txt", self.limits)
        result = self._phase(spec, timeout, sink)
        if result.storage_exceeded:
            return self._storage_outcome()
        if result.memory_exceeded:
            return self._memory_outcome(result, "tests/test.sh")
        if result.timed_out:
            if result.under_load:
                return self._under_load_outcome(result, "tests/test.sh", timeout)
            return Outcome(
                "failed",
                {
                    "code": "verifier_timeout",
                    "message": f"tests/test.sh did not finish within {timeout:g}s",
                },
            )
        primary, rewards, problem = read_reward(self.trial / "verifier")
        if primary is None:
            # No verdict: Harbor counts this as an error (RewardFileNotFoundError), not
            # as the agent's failure, and so do jobs (error_codes: kind "verifier").
            where = "/logs/verifier/reward.txt or reward.json"
            if problem:
                code, message = "reward_invalid", f"{problem} (tests/test.sh must write {where})"
            else:
                code, message = (
                    "reward_missing",
                    f"tests/test.sh exited with code {result.exit_code} without writing {where}",
                )
            return Outcome("error", {"code": code, "message": message})
        self.publish(
            "reward",
            {"reward": primary, "rewards": rewards, "test_exit_code": result.exit_code},
        )
        return Outcome("succeeded", reward_primary=primary, rewards=rewards)

    def _phase(
        self,
        spec: SandboxSpec,
        timeout: float,
        sink: PhaseLog,
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Run one sandboxed phase to its end; a cancel raises, a timeout is returned (and
        a ``stop`` of the phase's own, when the rollout is not cancelled: ``cancelled``)."""
        try:
            result = self.site.driver.run(
                spec, timeout=timeout, cancel=stop or self.cancel, on_line=sink
            )
        finally:
            sink.close()
        self.sandbox_sec += result.duration_sec
        log.info(
            "rollout %s: %s phase: %.1fs, cpu %s s, memory peak %s MB, cpu waits %s (%s)",
            self.rollout_id,
            sink.event,
            result.duration_sec,
            "?" if result.cpu_sec is None else f"{result.cpu_sec:.1f}",
            result.memory_peak_mb,
            result.load_details()["cpu_wait_share"],
            result.load_details()["measured"],
        )
        if result.cancelled and (stop is None or self.cancel.is_set()):
            raise Cancelled()
        free = free_bytes(self.site.trials_dir)
        if free is not None and free < _FULL_BELOW:  # what the phase did was cut short
            raise disk_full(self.site.trials_dir)
        usage = tree_usage(spec.watch)
        if usage.bytes > self.limits.storage_mb * 1024 * 1024 or not usage.complete:
            result.storage_exceeded = True  # written faster than the watchdog looked
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
        extra = [m for m in tool_path_tree(self.site.tool_paths).mounts if m.target not in taken]
        if self.site.tool_paths:
            env = {"PATH": self.site.search_path, **env}
        return SandboxSpec(
            command=command,
            workspace=workspace,
            workdir=self.workdir,
            mounts=mounts + extra,
            env=env,
            network=network,
            stdin=stdin,
            limits=self.limits,
            watch=self._watch(),
            user=self.user,
            image=self.image,
            label=self.rollout_id,
        )

    # --- the end --------------------------------------------------------------------------

    def _outputs(self) -> None:
        workspace, baseline = self.trial / "workspace", self.trial / "baseline"
        if not workspace.is_dir() or workspace.is_symlink():
            return
        stop = self.stop_collecting.is_set
        try:
            write_diff(baseline, workspace, self.trial, scrubber=self.scrubber, stop=stop)
        except OSError as exc:
            log.warning("rollout %s: could not write workspace.diff: %s", self.rollout_id, exc)
        try:
            write_tarball(workspace, self.trial, scrubber=self.scrubber, stop=stop)
        except OSError as exc:
            log.warning("rollout %s: could not write workspace.tar.gz: %s", self.rollout_id, exc)

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
        try:
            folder = open_dir(self.trial)
        except OSError:
            return
        try:
            write_at(folder, "result.json", [json.dumps(result, indent=2).encode()])
        finally:
            os.close(folder)

    def _llm_account(self) -> LlmAccount:
        """Whose token counts the rollout reports (read once the agent is done)."""
        if self._llm is None:
            views = read_exchanges(self.trial / EXCHANGES_FILE) if self.harness else []
            self._llm = account(self.harness, views, self.input.prices)
        return self._llm

    def _usage(self) -> dict[str, Any]:
        llm = self._llm_account()
        return usage_snapshot(
            self.rollout_id,
            wall_time_sec=time.monotonic() - self.started,
            sandbox_sec=self.sandbox_sec,
            bytes_uploaded=self.bytes_uploaded,
            bytes_downloaded=0,
            tokens=llm.tokens,
            prices=self.input.prices,
            source=llm.source,
            agent_reported=llm.agent if llm.disagreed else None,
        )

    def _trajectory(self, outcome: Outcome, usage: dict[str, Any]) -> None:
        """``trajectory.json``: what the agent did, step by step (ATIF)."""
        if self.harness is None:
            return
        rollout = {
            **self.doc,
            "status": outcome.status,
            "reward_primary": outcome.reward_primary,
            "rewards": outcome.rewards or None,
        }
        try:
            trajectory = build_trajectory(
                self.harness,
                self._llm_account(),
                instruction=self.instruction,
                version=self.agent_version,
                rollout=rollout,
                usage=usage,
                prices=self.input.prices,
            )
            write_trajectory(self.trial, trajectory, self.scrubber.text)
        except (ValueError, OSError) as exc:  # a pydantic ValidationError is a ValueError
            log.warning("rollout %s: no trajectory.json: %s", self.rollout_id, exc)
            self.note(f"the trajectory could not be written: {str(exc)[:500]}", warning=True)

    def _collect(self, outcome: Outcome, found: TrialIndex) -> None:
        """The finishing step: diff, tarball, trajectory, result.json, then the index."""
        try:
            self._outputs()
            usage = self._usage()
            self._trajectory(outcome, usage)
            self._result_json(outcome, usage)
            index_trial(self.trial, self.scrubber, self.stop_collecting.is_set, found)
        except Stopped:
            pass
        except Exception as exc:
            if (exhausted := exhaustion(exc, self.site.trials_dir)) is not None:
                log.warning(
                    "rollout %s: collecting artifacts: %s", self.rollout_id, exhausted.message
                )
            else:
                log.exception("rollout %s: collecting artifacts failed", self.rollout_id)

    def finish(self, outcome: Outcome) -> None:
        """Collect artifacts within ``finish_timeout_sec`` (or until a cancel), then end."""
        found = TrialIndex()
        if self.trial.is_dir():
            worker = threading.Thread(
                target=self._collect,
                args=(outcome, found),
                name=f"collect-{self.rollout_id}",
                daemon=True,
            )
            worker.start()
            deadline = time.monotonic() + self.settings.finish_timeout_sec
            while worker.is_alive():
                if self.cancel.is_set() and outcome.status not in ("cancelled", "error"):
                    if not self.shutting_down:
                        outcome = Outcome(
                            "cancelled",
                            {
                                "code": "cancelled",
                                "message": "cancelled by request while its artifacts were "
                                "being collected",
                            },
                        )
                    break
                if time.monotonic() >= deadline:
                    self.note(
                        f"collecting artifacts took longer than "
                        f"{self.settings.finish_timeout_sec:g}s; the artifacts are "
                        "incomplete",
                        warning=True,
                    )
                    break
                worker.join(0.05)
            if worker.is_alive():
                self.stop_collecting.set()
                worker.join(1.0)
            if found.skipped:
                left_out = ", ".join(f"{n} ({why})" for why, n in sorted(found.skipped.items()))
                self.note(f"files left out of the artifacts: {left_out}")
            if found.scrubbed:
                self.note(
                    f"stored credential values were removed from {len(found.scrubbed)} "
                    "artifact file(s)",
                    scrubbed=found.scrubbed[:20],
                )
        unpriced = self._usage().get("unpriced_models")
        if unpriced:
            self.note(
                f"cost unknown: no price for {', '.join(unpriced)} (add it to the table "
                "ENVPOOLS_PRICE_TABLE names)",
                unpriced_models=unpriced,
            )
        self.end(outcome, list(found.entries))

    def end(self, outcome: Outcome, entries: list[dict[str, Any]] | None = None) -> bool:
        """Record the terminal status and publish it, once; False if it had already ended.

        The status, artifacts and terminal event are one write; if the store refuses it,
        the end is kept and published live all the same (``state/terminal.py``).
        """
        usage: dict[str, Any] | None = None
        try:
            usage = self._usage()
            if entries is not None:
                usage["bytes_downloaded"] = sum(e["size_bytes"] for e in entries)
        except Exception:
            log.exception("rollout %s: pricing its usage failed", self.rollout_id)
        with self._end_lock:
            if self.ended:
                return False
            self.ended = True
            previous = self.doc["status"]
            changes = {
                "status": outcome.status,
                "finished_at": now_iso(),
                "error": outcome.error,
                "reward_primary": outcome.reward_primary,
                "rewards": outcome.rewards or None,
                "usage": usage,
            }
            data: dict[str, Any] = {
                "status": outcome.status,
                "previous": previous,
                "reward_primary": outcome.reward_primary,
            }
            if outcome.error:
                data["error"] = outcome.error
            self.doc = self.reporter.end(changes, data, entries, fallback=self.doc)
        return True
