"""Run a job: launch what is missing with bounded concurrency, follow each rollout to its end.

The wire contract has no stream that covers many rollouts, so each worker follows its
own rollout's event stream (SSE) from creation to the terminal lifecycle event, then
reads the final rollout once. There are at most ``concurrency`` workers, hence at most
that many open streams; nothing polls. Every create carries an Idempotency-Key derived
from (job, task, agent, model, attempt) and job metadata, and the rollout id is written
to the job folder as soon as it is known: a resumed job follows rollouts that already
exist, and a create repeated after a crash returns the rollout the first one made.

This module never prints: a ``Listener`` (see ``output/jobs.py``) hears what happens.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from envpools_cli import client as ep
from envpools_cli.jobs.plan import Trial
from envpools_cli.jobs.stats import is_attempt, passed
from envpools_cli.jobs.store import Job, JobStore, Record, Result, now_iso
from envpools_cli.models import ACTIVE_STATUSES, RolloutStatus

__all__ = ["Listener", "Outcome", "Progress", "Runner", "rollout_request"]

#: Connections per HTTP session: streams hold one each, so workers share a session in
#: groups small enough never to wait for a free connection.
_WORKERS_PER_SESSION = 16


def rollout_request(job: Job, trial: Trial) -> dict[str, Any]:
    """The create body of a trial; the same bytes every time, so a repeat is idempotent."""
    agent: dict[str, Any] = {"harness": trial.agent.harness}
    if trial.agent.model:
        agent["model_id"] = trial.agent.model
    return {
        "task_ref": {"dataset": job.dataset, "task_id": trial.task_id},
        "agent": agent,
        "pool_id": job.pool_id,
        "task_app_id": "",
        "timeouts": dict(job.timeouts),
        "metadata": {
            "envpools_job": job.id,
            "envpools_job_name": job.name,
            "envpools_trial": trial.key,
            "envpools_attempt": trial.attempt,
        },
    }


@dataclass
class Running:
    trial: Trial
    rollout_id: str | None
    status: str
    since: float


@dataclass
class Progress:
    """What a live view shows; every method is thread-safe."""

    job: Job
    pass_reward: float
    total: int = 0
    done: int = 0
    passes: int = 0
    attempts: int = 0
    failed: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0
    ended_this_run: int = 0
    started: float = field(default_factory=time.monotonic)
    running: dict[str, Running] = field(default_factory=dict)
    failures: deque[tuple[Trial, Result]] = field(default_factory=lambda: deque(maxlen=5))
    problems: int = 0
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, result: Result, *, this_run: bool) -> None:
        with self._lock:
            self.done += 1
            if result.cost_usd is None:
                self.cost_unknown += 1
            else:
                self.cost_usd += result.cost_usd
            if is_attempt(result):
                self.attempts += 1
                if passed(result, self.pass_reward):
                    self.passes += 1
                else:
                    self.failed += 1
            elif result.error_kind is not None:
                self.errors += 1
            if this_run:
                self.ended_this_run += 1

    def set_running(self, trial: Trial, rollout_id: str | None, status: str) -> None:
        with self._lock:
            current = self.running.get(trial.key)
            if current is None:
                self.running[trial.key] = Running(trial, rollout_id, status, self.clock())
            else:
                current.rollout_id = rollout_id or current.rollout_id
                if status in ACTIVE_STATUSES and current.status == RolloutStatus.QUEUED:
                    current.since = self.clock()  # time on the agent, not in the queue
                current.status = status

    def ended(self, trial: Trial, result: Result) -> None:
        with self._lock:
            self.running.pop(trial.key, None)
            if result.error_kind is not None or (
                is_attempt(result) and not passed(result, self.pass_reward)
            ):
                self.failures.append((trial, result))
        self.count(result, this_run=True)

    def passed(self, result: Result) -> bool:
        """Whether ``result`` counts as a pass in this job."""
        return passed(result, self.pass_reward)

    def forget(self, trial: Trial) -> None:
        with self._lock:
            self.running.pop(trial.key, None)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            elapsed = now - self.started
            remaining = self.total - self.done
            rate = self.ended_this_run / elapsed if elapsed > 0 else 0.0
            active = [r for r in self.running.values() if r.status != RolloutStatus.QUEUED]
            waiting = len(self.running) - len(active)
            slowest = sorted(active, key=lambda r: r.since)[:5]
            return {
                "job_id": self.job.id,
                "name": self.job.name,
                "total": self.total,
                "done": self.done,
                "running": len(active),
                "queued": remaining - len(active),
                "server_queued": waiting,
                "passes": self.passes,
                "attempts": self.attempts,
                "failed": self.failed,
                "errors": self.errors,
                "pass_rate": self.passes / self.attempts if self.attempts else None,
                "cost_usd": self.cost_usd,
                "cost_unknown": self.cost_unknown,
                "elapsed_sec": elapsed,
                "rate_per_sec": rate,
                "eta_sec": remaining / rate if rate > 0 and remaining else None,
                "slowest": [
                    {
                        "task_id": r.trial.task_id,
                        "agent": r.trial.agent.label,
                        "attempt": r.trial.attempt,
                        "rollout_id": r.rollout_id,
                        "status": r.status,
                        "elapsed_sec": now - r.since,
                    }
                    for r in slowest
                ],
                "failures": [
                    {
                        "task_id": t.task_id,
                        "agent": t.agent.label,
                        "attempt": t.attempt,
                        "rollout_id": r.rollout_id,
                        "status": r.status,
                        "reward": r.reward,
                        "error": (r.error or {}).get("code"),
                        "error_kind": r.error_kind,
                    }
                    for t, r in self.failures
                ],
            }


class Listener(Protocol):
    def started(self, progress: Progress, *, resumed: int) -> None: ...

    def changed(self, progress: Progress) -> None: ...

    def ended(self, progress: Progress, trial: Trial, result: Result) -> None: ...

    def problem(self, progress: Progress, trial: Trial | None, message: str) -> None: ...

    def finished(self, progress: Progress, outcome: Outcome) -> None: ...


@dataclass
class Outcome:
    """How a run ended: complete, or why not (``interrupted``, ``timeout``, ``cancelled``)."""

    reason: str
    errors: list[tuple[Trial, str]] = field(default_factory=list)
    transient_only: bool = True

    @property
    def complete(self) -> bool:
        return self.reason == "complete" and not self.errors


def _cut_short(result: Result) -> bool:
    """The backend restarted while this rollout ran: it never finished."""
    return (
        result.status == RolloutStatus.ERROR
        and (result.error or {}).get("code") == "backend_restarted"
    )


class _Stop(Exception):
    pass


class _LaunchFailed(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Runner:
    """Runs the missing trials of ``job``; ``run()`` returns when all ended or it stops."""

    def __init__(
        self,
        job: Job,
        store: JobStore,
        conn: dict[str, Any],
        listener: Listener,
        *,
        concurrency: int | None = None,
        deadline: float | None = None,
        launch_retries: int = 6,
        retry_errors: bool = False,
    ) -> None:
        self.job = job
        self.store = store
        self.conn = {k: v for k, v in conn.items() if k != "session"}
        self.listener = listener
        self.concurrency = max(1, concurrency or job.concurrency)
        self.deadline = deadline
        self.launch_retries = launch_retries
        self.retry_errors = retry_errors
        self.stop = threading.Event()
        self.cancelled = threading.Event()
        self.progress = Progress(job, job.pass_reward, total=job.total)
        self._base_session: ep.HTTPSession | None = conn.get("session")
        self._own_sessions: list[ep.HTTPSession] = []
        self._errors: list[tuple[Trial, str, bool]] = []
        self._lock = threading.Lock()

    # --- the run --------------------------------------------------------------------------

    def run(self) -> Outcome:
        records = self.store.records(self.job)
        # Rollouts already running come first: they hold a backend slot anyway.
        following: list[tuple[Trial, Record | None]] = []
        pending: list[tuple[Trial, Record | None]] = []
        resumed = 0
        for trial in self.job.trials():
            record = records.get(trial.key)
            if record is None:
                pending.append((trial, None))
            elif record.result is None and record.rollout_id:
                following.append((trial, record))
            elif record.result is not None and not self._rerun(record.result):
                self.progress.count(record.result, this_run=False)
                resumed += 1
            else:
                pending.append((trial, record))
        pending = following + pending
        work: queue.SimpleQueue[tuple[Trial, Record | None] | None] = queue.SimpleQueue()
        for item in pending:
            work.put(item)
        workers = min(self.concurrency, len(pending))
        for _ in range(workers):
            work.put(None)
        self.listener.started(self.progress, resumed=resumed)
        threads = [
            threading.Thread(
                target=self._worker, args=(work, self._session(i)), daemon=True, name=f"job-{i}"
            )
            for i in range(workers)
        ]
        for thread in threads:
            thread.start()
        reason = "complete"
        try:
            reason = self._wait(threads)
        except KeyboardInterrupt:
            self.stop.set()
            reason = "interrupted"
            raise
        finally:
            if reason != "complete":
                self.stop.set()
            outcome = Outcome(
                reason,
                [(t, m) for t, m, _ in self._errors],
                transient_only=all(transient for _, _, transient in self._errors),
            )
            if reason == "complete" and not self._errors:
                self.store.set_state(self.job, "finished")
            self.listener.finished(self.progress, outcome)
            if reason == "complete":
                # Otherwise workers may still be reading: their sessions go with the process.
                for session in self._own_sessions:
                    session.close()
        return outcome

    def _wait(self, threads: list[threading.Thread]) -> str:
        next_check = 0.0
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.2)
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                return "timeout"
            if now >= next_check and not self.cancelled.is_set():
                next_check = now + 1.0
                if self._cancel_requested():
                    # Launch nothing more; workers still record the rollouts that
                    # `jobs cancel` cancelled on the backend as they end.
                    self.cancelled.set()
        return "cancelled" if self.cancelled.is_set() else "complete"

    def _rerun(self, result: Result) -> bool:
        """Whether a recorded rollout never really ran and should be launched again.

        A backend that restarted (a reboot) ends the rollouts it was running in ``error``
        with ``backend_restarted``: those are run again on resume. ``retry_errors`` runs
        every error (``error_codes``: the rollout reached no verdict) again.
        """
        return _cut_short(result) or (self.retry_errors and result.error_kind is not None)

    def _cancel_requested(self) -> bool:
        return self.store.state(self.job).get("status") == "cancelled"

    def _session(self, index: int) -> ep.HTTPSession | None:
        group = index // _WORKERS_PER_SESSION
        if group == 0:
            return self._base_session
        while len(self._own_sessions) < group:
            self._own_sessions.append(ep.HTTPSession())
        return self._own_sessions[group - 1]

    def _worker(
        self,
        work: queue.SimpleQueue[tuple[Trial, Record | None] | None],
        session: ep.HTTPSession | None,
    ) -> None:
        conn = {**self.conn, "session": session}
        while not self.stop.is_set():
            item = work.get()
            if item is None:
                return
            trial, record = item
            try:
                self._one(trial, record, conn)
            except _Stop:
                self.progress.forget(trial)
                return
            except _LaunchFailed as exc:
                self._failed(trial, f"not launched: {exc}", transient=exc.transient)
            except Exception as exc:  # one rollout's trouble must not end the job
                transient = isinstance(exc, ep.TransportError | ep.ServerError | ep.RateLimitError)
                self._failed(trial, f"{type(exc).__name__}: {exc}", transient=transient)

    def _failed(self, trial: Trial, message: str, *, transient: bool) -> None:
        self.progress.forget(trial)
        if self.stop.is_set():
            return  # the run is over; what a leftover worker hits is not news
        with self._lock:
            self._errors.append((trial, message, transient))
        self.listener.problem(self.progress, trial, message)

    # --- one trial ------------------------------------------------------------------------

    def _one(self, trial: Trial, record: Record | None, conn: dict[str, Any]) -> None:
        reruns = 0
        while True:
            if self.stop.is_set():
                raise _Stop()
            if record is not None and record.result is not None and record.rollout_id:
                # Run again (see _rerun): the old rollout is kept in the record's history.
                record = Record(trial, replaced=[*record.replaced, record.rollout_id])
            if record is None or not record.rollout_id:
                if self.cancelled.is_set() or self._cancel_requested():
                    self.cancelled.set()
                    return
                record = self._launch(trial, record, conn)
            result = self._result(trial, record, conn)
            record.result = result
            self.store.save(self.job, record)
            # A rollout the backend's restart cut short while this run followed it is run
            # again at once (twice at most: a backend that keeps restarting is reported).
            if _cut_short(result) and reruns < 2:
                reruns += 1
                self.listener.problem(
                    self.progress, trial, f"{record.rollout_id} ended in error; running it again"
                )
                continue
            self.progress.ended(trial, result)
            self.listener.ended(self.progress, trial, result)
            return

    def _launch(self, trial: Trial, record: Record | None, conn: dict[str, Any]) -> Record:
        self.progress.set_running(trial, None, "queued")
        self.listener.changed(self.progress)
        replaced = record.replaced if record is not None else []
        rollout_id = self._create(trial, conn, generation=len(replaced))
        launched = Record(trial, rollout_id, now_iso(), replaced=list(replaced))
        self.store.save(self.job, launched)
        if self._cancel_requested():
            # `jobs cancel` may have listed the records just before this one.
            ep.cancel_rollout(rollout_id, **conn)
        return launched

    def _result(self, trial: Trial, record: Record, conn: dict[str, Any]) -> Result:
        assert record.rollout_id is not None
        self.progress.set_running(trial, record.rollout_id, "queued")
        self.listener.changed(self.progress)
        doc = self._follow(trial, record.rollout_id, conn)
        usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else None
        if usage is None:
            try:
                usage = ep.get_rollout_usage(record.rollout_id, **conn)
            except (ep.APIError, ep.TransportError):
                usage = None
        return Result.from_rollout(trial, doc, usage)

    def _create(self, trial: Trial, conn: dict[str, Any], *, generation: int = 0) -> str:
        request = rollout_request(self.job, trial)
        key = trial.idempotency_key(self.job.id, generation)
        attempt = 0
        while True:
            if self.stop.is_set():
                raise _Stop()
            try:
                created = ep.create_rollout(request=request, idempotency_key=key, **conn)
            except (ep.RateLimitError, ep.ServerError, ep.TransportError) as exc:
                attempt += 1
                if attempt > self.launch_retries:
                    raise _LaunchFailed(str(exc), transient=True) from None
                self.listener.problem(self.progress, trial, f"{exc}; retrying")
                self._pause(min(2.0**attempt, 10.0))
                continue
            except (ep.APIError, ep.InvalidRequestError) as exc:
                raise _LaunchFailed(str(exc), transient=False) from None
            rollout_id = created.get("rollout_id") or created.get("trial_id") or created.get("id")
            if not isinstance(rollout_id, str) or not rollout_id:
                raise _LaunchFailed("the backend answered without a rollout id", transient=False)
            return rollout_id

    def _pause(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise _Stop()

    def _follow(self, trial: Trial, rollout_id: str, conn: dict[str, Any]) -> dict[str, Any]:
        """Follow the rollout's events until it is terminal; return the final rollout.

        Reconnecting is the client's (``ReconnectPolicy.watching``, as for ``tail`` and
        ``wait``): drops, early closes and a backend restart are ridden out; a backend lost
        for longer than the policy allows fails this trial as transient (``jobs resume``
        follows it again).
        """

        def reconnecting(attempt: int, delay: float, exc: Exception) -> None:
            if self.stop.is_set():
                raise _Stop()
            self.listener.problem(
                self.progress, trial, f"event stream: {exc}; reconnecting in {delay:.1f}s"
            )

        with ep.stream_rollout_events(
            rollout_id,
            auto_reconnect=True,
            reconnect=ep.ReconnectPolicy.watching(),
            on_gap="ignore",
            on_reconnect=reconnecting,
            **conn,
        ) as stream:
            for event in stream:
                if self.stop.is_set():
                    raise _Stop()
                data = event.get("data")
                if event.get("event") == "lifecycle" and isinstance(data, dict):
                    status = str(data.get("status", "")).lower()
                    if status and not RolloutStatus.terminal(status):
                        self.progress.set_running(trial, rollout_id, status)
                        self.listener.changed(self.progress)
        return ep.get_rollout(rollout_id, **conn)
