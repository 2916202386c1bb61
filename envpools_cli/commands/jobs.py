"""envpools jobs: evals over many tasks x agents x models x attempts, resumable, with reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from envpools_cli.cli_errors import (
    EXIT_ERROR,
    EXIT_NOT_SUCCEEDED,
    EXIT_TIMEOUT,
    EXIT_TRANSIENT,
    CLIError,
    UsageProblem,
)
from envpools_cli.commands._export import (
    AgentFilterOpt,
    ExportFormatOpt,
    MinRewardOpt,
    OverwriteOpt,
    StatusFilterOpt,
    check_export_flags,
    run_export,
)
from envpools_cli.commands._options import (
    JsonOpt,
    QuietOpt,
    YesOpt,
    check_writable_file,
    confirm_destructive,
    output_format,
    read_document,
)
from envpools_cli.runtime import runtime

if TYPE_CHECKING:
    from envpools_cli.jobs.run import Outcome
    from envpools_cli.jobs.stats import JobStats
    from envpools_cli.jobs.store import Job, JobStore

app = typer.Typer(
    help="Eval jobs: tasks x agents x attempts, live progress, pass@k, cost, reports.",
    no_args_is_help=True,
)

JobArg = Annotated[str, typer.Argument(help="Job id, unique id prefix, or name (newest).")]
TableOutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output format: table, json, jsonl, yaml, csv or name.",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "-n",
        metavar="N",
        min=1,
        max=1024,
        help="Rollouts in flight at once (default 4); a backend that runs fewer at once "
        "says so, with the setting to change.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SEC",
        min=0.001,
        help="Stop after this many seconds (exit 3); rollouts go on, resume later.",
        show_default=False,
    ),
]
MinPassRateOpt = Annotated[
    float | None,
    typer.Option(
        "--min-pass-rate",
        metavar="RATE",
        min=0.0,
        max=1.0,
        help="Exit 5 when any agent/model's pass rate is below this fraction.",
        show_default=False,
    ),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option(
        "--junit",
        metavar="FILE",
        help="Write JUnit XML: one testcase per task x agent, attempts inside.",
        show_default=False,
    ),
]


def _format(output: str | None, as_json: bool, quiet: bool) -> str:
    """Like every command's -o, plus csv."""
    if not quiet and not as_json and output and output.lower() == "csv":
        return "csv"
    return output_format(output, as_json, quiet)


def _store() -> JobStore:
    from envpools_cli.jobs.store import JobStore

    return JobStore()


def _load(ref: str) -> Job:
    from envpools_cli.jobs.store import JobNotFound

    try:
        return _store().resolve(ref)
    except JobNotFound as exc:
        raise CLIError(
            f"no job {exc.args[0]!r}" if exc.args and exc.args[0] == ref else f"no job: {exc}",
            hint="'envpools jobs list' shows the jobs",
            exit_code=6,
            code="not_found",
        ) from None


def _plan_error(exc: Exception) -> UsageProblem:
    return UsageProblem(str(exc))


def _job_conn(job: Job, *, restore: bool = False) -> dict[str, Any]:
    """The connection for a job's rollouts; refuse a backend that does not know the job.

    ``restore``: a pool the job made that is gone from the backend holding the job's
    rollouts is made again from the job's task folders (``resume`` reuses the job's pool).
    """
    from envpools_cli import client as ep
    from envpools_cli.output.messages import warn

    conn = runtime.conn()
    if job.api_version and job.api_version != conn.get("api_version"):
        conn["api_version"] = job.api_version
    try:
        # One cheap request: a backend that is down fails here, not in every worker.
        ep.get_pool(job.pool_id, **conn)
    except ep.NotFoundError:
        from envpools_cli.jobs.lifecycle import restore_pool

        if restore and restore_pool(job, _store(), conn):
            warn(f"pool {job.pool_id} of job {job.id} was gone; made it again from its tasks")
            return conn
        where = (
            "" if conn["backend_base"] == job.backend_base else f" (it ran on {job.backend_base})"
        )
        raise UsageProblem(
            f"the backend at {conn['backend_base']} has no pool {job.pool_id!r} for job "
            f"{job.id}{where}",
            hint=f"pass --api-url {job.backend_base}"
            + (f" or --profile {job.profile}" if job.profile else ""),
        ) from None
    if conn["backend_base"] != job.backend_base:
        warn(
            f"job {job.id} ran on {job.backend_base}; continuing on {conn['backend_base']}, "
            f"which has its pool {job.pool_id}"
        )
    return conn


# --- run / resume ---------------------------------------------------------------------------


@app.command("run")
def run_job(
    tasks: Annotated[
        Path | None,
        typer.Option(
            "--tasks",
            "-t",
            metavar="DIR",
            help="A Harbor task folder, or a folder of them (a pool is created for the job).",
            show_default=False,
        ),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option("--pool", metavar="POOL", help="Run the tasks of this existing pool."),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", metavar="GLOB", help="Only task ids matching (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", metavar="GLOB", help="Skip task ids matching (repeatable)."),
    ] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            "-a",
            metavar="AGENT[:MODEL]",
            help="Agent, optionally with a model (repeatable): oracle, codex:gpt-5.1-codex-mini.",
        ),
    ] = None,
    attempts: Annotated[
        int | None,
        typer.Option(
            "--attempts",
            "-k",
            metavar="K",
            min=1,
            max=10_000,
            help="Attempts per task x agent (the k of pass@k; default 1).",
            show_default=False,
        ),
    ] = None,
    concurrency: ConcurrencyOpt = None,
    agent_timeout: Annotated[
        int | None,
        typer.Option("--agent-timeout", metavar="SEC", min=1, help="Agent time limit per rollout."),
    ] = None,
    verifier_timeout: Annotated[
        int | None,
        typer.Option("--verifier-timeout", metavar="SEC", min=1, help="Verifier time limit."),
    ] = None,
    timeout: TimeoutOpt = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Job name (default: the folder's).")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="task_ref.dataset of the rollouts (default: the name)."),
    ] = None,
    pass_reward: Annotated[
        float | None,
        typer.Option(
            "--pass-reward",
            metavar="R",
            help="A rollout passes when it succeeded with reward >= R (default 1).",
            show_default=False,
        ),
    ] = None,
    min_pass_rate: MinPassRateOpt = None,
    junit: JunitOpt = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            "-f",
            metavar="FILE",
            help="Job as YAML or JSON (schema: README 'Running an eval'); flags override it.",
        ),
    ] = None,
    output: TableOutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run an eval: every task x agent x attempt as a rollout, with a live view and a result table.

    Rollouts are launched at most --concurrency at a time and followed through their
    event streams. The job is kept in the data dir, one record per rollout: after
    Ctrl-C, a crash or --timeout, 'envpools jobs resume ID' launches only what is missing.
    The result table goes to stdout, progress to stderr. Exit 0 when the job completed
    (5 below --min-pass-rate, 3 on --timeout, 130 interrupted).

    Example: envpools jobs run --tasks ./tasks --agent oracle --agent codex:gpt-5.1-codex-mini -k 3
    """
    from envpools_cli.jobs.plan import PlanError
    from envpools_cli.jobs.spec import load_job_file, resolve_spec
    from envpools_cli.output.messages import warn

    fmt = _format(output, as_json, quiet)
    file = None
    base_dir = None
    try:
        if from_file:
            where = "stdin" if from_file == "-" else from_file
            file = load_job_file(read_document(from_file), where)
            base_dir = Path.cwd() if from_file == "-" else Path(from_file).resolve().parent
        spec = resolve_spec(
            file,
            base_dir,
            {
                "tasks_dir": tasks,
                "pool": pool,
                "include": include,
                "exclude": exclude,
                "agents": agent,
                "attempts": attempts,
                "concurrency": concurrency,
                "agent_sec": agent_timeout,
                "verifier_sec": verifier_timeout,
                "timeout_sec": timeout,
                "name": name,
                "dataset": dataset,
                "pass_reward": pass_reward,
                "min_pass_rate": min_pass_rate,
                "junit": junit,
            },
        )
    except PlanError as exc:
        raise _plan_error(exc) from None
    if spec.pass_reward != spec.pass_reward or abs(spec.pass_reward) == float("inf"):
        raise UsageProblem(f"--pass-reward must be a finite number, got {spec.pass_reward}")
    check_writable_file(spec.junit, "--junit")
    from envpools_cli.jobs.lifecycle import create_job

    store = _store()
    try:
        job = create_job(
            spec,
            store,
            runtime.conn(),
            profile=runtime.resolved().profile,
            warn=lambda message: warn(message),
        )
    except PlanError as exc:
        raise _plan_error(exc) from None
    _run(
        job,
        store,
        runtime.conn(),
        fmt=fmt,
        concurrency=spec.concurrency,
        timeout=spec.timeout_sec,
        min_pass_rate=spec.min_pass_rate,
        junit=spec.junit,
    )


@app.command("resume")
def resume_job(
    job_ref: JobArg,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors",
            help="Also run again the rollouts that reached no verdict (errors: verifier, "
            "provider, infrastructure, setup). Those a backend restart ended are always run "
            "again.",
        ),
    ] = False,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = None,
    min_pass_rate: MinPassRateOpt = None,
    junit: JunitOpt = None,
    output: TableOutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Continue a job: follow its rollouts still going, launch only the missing ones.

    A rollout is never launched twice: each record names its rollout as soon as it
    exists, and a create repeated after a crash reuses its Idempotency-Key. Rollouts a
    backend restart (a reboot) cut short are run again; the record keeps their ids. A
    cancelled job resumes too (what was cancelled stays cancelled).

    Example: envpools jobs resume job-20261128-101500-3fa2 --min-pass-rate 0.8
    """
    fmt = _format(output, as_json, quiet)
    check_writable_file(junit, "--junit")
    store = _store()
    job = _load(job_ref)
    conn = _job_conn(job, restore=True)
    if store.state(job).get("status") == "cancelled":
        store.clear_state(job)
    _run(
        job,
        store,
        conn,
        fmt=fmt,
        concurrency=concurrency or job.concurrency,
        timeout=timeout,
        min_pass_rate=min_pass_rate,
        junit=junit,
        retry_errors=retry_errors,
    )


def _run(
    job: Job,
    store: JobStore,
    conn: dict[str, Any],
    *,
    fmt: str,
    concurrency: int,
    timeout: float | None,
    min_pass_rate: float | None,
    junit: Path | None,
    retry_errors: bool = False,
) -> None:
    from envpools_cli.jobs.lifecycle import concurrency_note, describe, job_stats
    from envpools_cli.jobs.run import Runner
    from envpools_cli.jobs.store import JobBusy
    from envpools_cli.output.jobs import emit_result, make_progress
    from envpools_cli.output.messages import warn

    if concurrency > 1 and (note := concurrency_note(conn, concurrency)):
        warn(note)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        with store.lock(job):
            runner = Runner(
                job,
                store,
                conn,
                make_progress(),
                concurrency=concurrency,
                deadline=deadline,
                retry_errors=retry_errors,
            )
            outcome = runner.run()
    except JobBusy as exc:
        raise CLIError(
            f"job {job.id} is already running (pid {exc.args[0]})",
            hint=f"wait for it, or stop it with 'envpools jobs cancel {job.id}'",
        ) from None
    stats = job_stats(job, store)
    if junit is not None:
        from envpools_cli.output.job_junit import write_junit

        write_junit(junit, job, stats, store.results(job))
    emit_result(describe(job, store), stats.to_dict(), fmt)
    code = _exit_code(outcome, stats, min_pass_rate, job.id)
    if code:
        raise typer.Exit(code)


def _exit_code(outcome: Outcome, stats: JobStats, min_pass_rate: float | None, job_id: str) -> int:
    """3 timeout, 1 cancelled, 7 (or 1) trials without a result, 7 rollouts that ended in a
    transient error (a 429, a 5xx, a restart: the job is not done), 5 below the gate."""
    from envpools_cli.output.messages import error, hint

    if outcome.reason == "timeout":
        return EXIT_TIMEOUT
    if outcome.reason == "cancelled":
        return EXIT_ERROR
    if outcome.errors:
        for trial, message in outcome.errors[:5]:
            error(f"{trial.task_id} {trial.agent.label} #{trial.attempt}: {message}")
        return EXIT_TRANSIENT if outcome.transient_only else EXIT_ERROR
    if stats.transient_errors:
        error(
            f"{stats.transient_errors} rollout(s) ended in a transient error (provider or "
            "infrastructure): the job has no verdict for them"
        )
        hint(f"run them again: envpools jobs resume {job_id} --retry-errors")
        return EXIT_TRANSIENT
    if min_pass_rate is not None:
        # Errors are no attempts: the gate weighs what the agents did, not what the
        # platform could not run (those are counted, and said, apart).
        below = [t for t in stats.totals if (t.pass_rate or 0.0) < min_pass_rate]
        for total in below:
            rate = "no attempts" if total.pass_rate is None else f"{100 * total.pass_rate:.1f}%"
            errors = f" ({total.errors} error(s) not counted)" if total.errors else ""
            error(
                f"{total.label}: pass rate {rate} is below --min-pass-rate "
                f"{min_pass_rate:g}{errors}"
            )
        if below:
            return EXIT_NOT_SUCCEEDED
    return 0


# --- inspect --------------------------------------------------------------------------------


@app.command("list")
def list_jobs(
    output: TableOutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Jobs in this data dir, newest first, with their progress and pass rate.

    Example: envpools jobs list -o json | jq '.[] | select(.status == "interrupted") | .id'
    """
    from envpools_cli.jobs.lifecycle import describe
    from envpools_cli.output.jobs import emit_jobs

    fmt = _format(output, as_json, quiet)
    store = _store()
    emit_jobs([describe(store.load(i), store) for i in store.ids()], fmt)


@app.command("show")
def show_job(
    job_ref: JobArg,
    rollouts: Annotated[
        bool, typer.Option("--rollouts", help="One row per rollout instead of the result table.")
    ] = False,
    output: TableOutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """A job's result table: per task x agent, then totals per agent/model.

    PASS is passes/attempts (a + means attempts are still missing), PASS@k uses the
    unbiased estimator, 95% CI is Wilson's interval on the pass rate, TIME the mean
    rollout duration, COST the sum. Wider terminals add errors, tokens and cost per
    success; -o json|jsonl|csv gives every figure.

    Example: envpools jobs show nightly -o csv > results.csv
    """
    from envpools_cli.jobs.lifecycle import describe, job_stats, rollout_rows
    from envpools_cli.output.jobs import emit_result, emit_rollouts

    fmt = _format(output, as_json, quiet)
    store = _store()
    job = _load(job_ref)
    if rollouts:
        emit_rollouts(rollout_rows(job, store), fmt)
        return
    emit_result(describe(job, store), job_stats(job, store).to_dict(), fmt)


@app.command("cancel")
def cancel_job(job_ref: JobArg) -> None:
    """Stop a job: launch nothing more and cancel its rollouts still going.

    A 'jobs run' following the job records the cancelled rollouts and stops.

    Example: envpools jobs cancel nightly
    """
    from envpools_cli.jobs.lifecycle import cancel_job as cancel
    from envpools_cli.output.messages import success

    store = _store()
    job = _load(job_ref)
    cancelled = cancel(job, store, _job_conn(job))
    success(f"cancelled job {job.id} ({len(cancelled)} rollout(s) cancelled)")


@app.command("delete")
def delete_job(
    job_ref: JobArg,
    keep_pool: Annotated[
        bool, typer.Option("--keep-pool", help="Keep the pool the job created.")
    ] = False,
    yes: YesOpt = False,
) -> None:
    """Delete a job's records and the pool it created (unless --keep-pool).

    Rollouts of the job still going are cancelled first; the finished ones stay on the
    backend.

    Example: envpools jobs delete old-run --yes
    """
    from envpools_cli.jobs.lifecycle import delete_job as delete
    from envpools_cli.output.messages import success, warn

    store = _store()
    job = _load(job_ref)
    if store.running_pid(job) is not None:
        raise CLIError(
            f"job {job.id} is running", hint=f"cancel it first: envpools jobs cancel {job.id}"
        )
    confirm_destructive(f"delete job {job.id} ({job.name})", yes)
    conn = None
    if job.pool_created and not keep_pool:
        try:
            conn = _job_conn(job)
        except UsageProblem as exc:
            warn(f"{exc.message}; the pool is left alone")
    problem = delete(job, store, conn, keep_pool=keep_pool)
    if problem:
        warn(problem)
    success(f"deleted job {job.id}")


@app.command("report")
def report_job(
    job_ref: JobArg,
    html: Annotated[
        Path, typer.Option("--html", metavar="FILE", help="Where to write the report.")
    ],
    events: Annotated[
        bool,
        typer.Option(
            "--events/--no-events",
            help="Include each rollout's events and artifact list (fetched from the backend).",
        ),
    ] = True,
    max_events: Annotated[
        int, typer.Option("--max-events", min=1, help="Events kept per rollout (the last ones).")
    ] = 200,
) -> None:
    """Write one self-contained HTML report: tables, charts, every rollout with its events.

    The file needs no network to open: styles and charts (SVG) are inline, and it
    loads nothing from anywhere.

    Example: envpools jobs report nightly --html nightly.html
    """
    from envpools_cli.jobs.lifecycle import describe, job_stats, rollout_rows
    from envpools_cli.jobs.report import fetch_details, render_report
    from envpools_cli.output.messages import info, success, warn

    store = _store()
    job = _load(job_ref)
    rows = rollout_rows(job, store)
    details: dict[str, dict[str, Any]] = {}
    if events and rows:
        info(f"fetching events of {len(rows)} rollout(s)...")
        details, problems = fetch_details(
            [r["rollout_id"] for r in rows], _job_conn(job), max_events=max_events
        )
        if problems:
            warn(f"{len(problems)} rollout(s) without events in the report: {problems[0]}")
    document = render_report(describe(job, store), job_stats(job, store).to_dict(), rows, details)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(document, encoding="utf-8")
    success(f"wrote {html} ({len(document) // 1024} KiB)")


@app.command("export")
def export_job(
    job_ref: JobArg,
    fmt: ExportFormatOpt = "messages",
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", "-d", help="The folder to write into (default: ./<job id>-<format>)."
        ),
    ] = None,
    min_reward: MinRewardOpt = None,
    status: StatusFilterOpt = None,
    agent: AgentFilterOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a job's trajectories for training and analysis: ATIF, chat JSONL or Parquet.

    messages.jsonl holds one conversation per rollout ({"messages", "tools", "metadata"}:
    reward, task, agent, model, attempt, job), for datasets.load_dataset("json", ...);
    rollouts.parquet one row per rollout, for load_dataset("parquet", ...); atif one
    <rollout id>.json each. The paths written go to stdout.

    Example: envpools jobs export nightly --format parquet --min-reward 1 --status succeeded
    """
    from envpools_cli.jobs.export import choose, items_of_job
    from envpools_cli.jobs.lifecycle import rollout_rows

    statuses, agents = check_export_flags(fmt, status, agent)
    store = _store()
    job = _load(job_ref)
    items = choose(
        items_of_job(job.id, rollout_rows(job, store), job.dataset),
        min_reward=min_reward,
        statuses=statuses,
        agents=agents,
    )
    folder = directory or Path(f"{job.id}-{fmt}")
    conn = _job_conn(job) if items else runtime.conn()
    run_export(
        items,
        fmt=fmt,
        folder=folder,
        overwrite=overwrite,
        conn=conn,
        as_json=as_json,
        describe=lambda n: f"{n} rollout(s) of job {job.id}",
    )


@app.command("compare")
def compare_jobs(
    job_a: Annotated[str, typer.Argument(help="The baseline job (A).")],
    job_b: Annotated[str, typer.Argument(help="The job compared with it (B).")],
    output: TableOutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed from job A to job B, task by task (newly passing, newly failing), with totals.

    Example: envpools jobs compare baseline candidate -o json
    """
    from envpools_cli.jobs.lifecycle import describe, job_stats
    from envpools_cli.jobs.stats import compare
    from envpools_cli.output.jobs import emit_comparison

    fmt = _format(output, as_json, False)
    store = _store()
    a, b = _load(job_a), _load(job_b)
    comparison = compare(job_stats(a, store), job_stats(b, store))
    emit_comparison(describe(a, store), describe(b, store), comparison.to_dict(), fmt)
