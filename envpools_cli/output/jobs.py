"""Eval jobs on screen: the live progress of a run, result tables, job lists, comparisons.

Progress goes to stderr (a Rich live display on a terminal, one line per ended rollout
otherwise); tables and documents go to stdout. Tables are fitted by ``formats`` like
every other: ids (job, rollout, ``agent:model``) are never folded or cut, task names give
way with an ellipsis, and the optional columns (PASS@1, tokens, cost per success, error
kinds) appear when the terminal is wide enough. Errors (rollouts with no verdict) have
their own column everywhere, and a cost nobody could price reads ``unknown``, never $0.
"""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from envpools_cli.output.formats import Column
from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import color_enabled, dump_json, is_tty, write_out

if TYPE_CHECKING:
    from envpools_cli.jobs.plan import Trial
    from envpools_cli.jobs.run import Outcome, Progress
    from envpools_cli.jobs.store import Result

__all__ = [
    "LineProgress",
    "LiveProgress",
    "emit_comparison",
    "emit_jobs",
    "emit_result",
    "emit_rollouts",
    "fmt_cost",
    "fmt_duration",
    "fmt_rate",
    "make_progress",
    "result_rows",
]

# --- figures as text ------------------------------------------------------------------------


def fmt_rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def fmt_percent(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def fmt_interval(low: Any, high: Any) -> str:
    return "-" if low is None or high is None else f"{low:.2f}-{high:.2f}"


def fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_cost(usd: Any) -> str:
    if usd is None:
        return "-"
    usd = float(usd)
    if usd == 0:
        return "$0"
    if usd < 0.01:
        return f"${usd:.4f}"
    if usd < 100:
        return f"${usd:.2f}"
    return f"${usd:,.0f}"


def fmt_count(value: Any) -> str:
    value = int(value or 0)
    if value < 1000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


# --- result tables --------------------------------------------------------------------------

#: Terminal widths from which the optional columns appear (plain text has them all).
_WIDE = 100
_WIDER = 120


def fmt_row_cost(row: dict[str, Any]) -> str:
    """A row's cost: unknown when some rollout's is (never a made-up $0); ``>=`` the known
    part when only some are."""
    if row.get("cost_usd") is not None:
        return fmt_cost(row["cost_usd"])
    known = float(row.get("cost_usd_known") or 0.0)
    return f">={fmt_cost(known)}" if known > 0 else "unknown"


def fmt_errors(value: Any) -> str:
    return "-" if not value else str(value)


def error_kinds_text(kinds: dict[str, int] | None) -> str:
    """``verifier 1, provider 2`` in the table's order of kinds."""
    return ", ".join(f"{kind} {count}" for kind, count in (kinds or {}).items()) or "-"


def _pass_text(row: dict[str, Any]) -> str:
    text = f"{row['passes']}/{row['attempts']}"
    missing = row["planned"] - row["attempts"] - row["cancelled"]
    return text + ("+" if missing > 0 else "")


def _result_columns(k: int, *, totals: bool, width: int | None) -> list[Column]:
    """Columns for a terminal ``width`` wide (None: plain text, every column).

    The agent (with its model: ``codex:gpt-5.1-codex-mini``, as ``--agent`` takes it) is
    an id: never cut. PASS@1 is the unbiased estimator with k=1, which is exactly
    passes/attempts, and RATE the same as a percentage: narrow terminals keep PASS.
    Errors (no verdict: verifier, provider, infrastructure...) are never attempts; ERR
    counts them, by kind where there is room.
    """
    wide = width is None or width >= _WIDE
    wider = width is None or width >= _WIDER
    columns = [Column("AGENT", "agent_label", kind="id")]
    if not totals:
        columns.insert(0, Column("TASK", "task_id", ratio=2))
    columns += [
        Column("PASS", "_pass", kind="fixed"),
        Column("ERR", "errors", fmt_errors, kind="fixed"),
    ]
    if totals and wide:
        columns.append(Column("RATE", "pass_rate", fmt_percent, kind="fixed"))
    if k > 1 and wide:
        columns.append(Column("PASS@1", "pass_at_1", fmt_rate, kind="fixed"))
    columns += [
        Column(f"PASS@{k}", "pass_at_k", fmt_rate, kind="fixed"),
        Column("95% CI", "_ci", kind="fixed"),
        Column("REWARD", "mean_reward", fmt_rate, kind="fixed"),
        Column("TIME", "mean_duration_sec", fmt_duration, kind="fixed"),
        Column("COST", "_cost", kind="fixed"),
    ]
    if wider:
        columns += [
            Column("TOKENS", "_tokens", kind="fixed"),
            Column("CACHE", "cache_tokens", fmt_count, kind="fixed"),
            Column("$/PASS", "cost_per_success", fmt_cost, kind="fixed"),
        ]
        if totals:
            columns += [
                Column("ERRORS", "_kinds"),
                Column("MODEL USED", "_models"),
            ]
    return columns


def _decorate(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "_pass": _pass_text(row),
        "_ci": fmt_interval(row.get("ci_low"), row.get("ci_high")),
        "_tokens": f"{fmt_count(row['input_tokens'])}/{fmt_count(row['output_tokens'])}",
        "_cost": fmt_row_cost(row),
        "_kinds": error_kinds_text(row.get("errors_by_kind")),
        "_models": ", ".join(row.get("models_used") or []) or "-",
    }


def result_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows for jsonl/csv: every task x agent row, then every agent total."""
    rows = []
    for scope, key in (("task", "groups"), ("agent", "totals")):
        for row in result[key]:
            rows.append({"scope": scope, **{k: v for k, v in row.items()}})
    return rows


_CSV_FIELDS = (
    "scope",
    "task_id",
    "agent",
    "model",
    "agent_label",
    "models_used",
    "k",
    "planned",
    "tasks",
    "attempts",
    "passes",
    "failures",
    "errors",
    "errors_by_kind",
    "transient_errors",
    "cancelled",
    "pass_rate",
    "pass_at_1",
    "pass_at_k",
    "ci_low",
    "ci_high",
    "mean_reward",
    "mean_duration_sec",
    "input_tokens",
    "output_tokens",
    "cache_tokens",
    "cost_usd",
    "cost_usd_known",
    "unpriced_rollouts",
    "unpriced_models",
    "cost_per_success",
)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return value


def _csv(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in fields})
    return buffer.getvalue()


def _console_width() -> int:
    from rich.console import Console

    return Console(file=sys.stdout).width


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    from envpools_cli.output.formats import print_table

    print_table(rows, columns)


def _notes(result: dict[str, Any], job_id: str) -> None:
    """Errors and unknown costs, said in words under the tables (stderr)."""
    from envpools_cli.output.messages import info, warn

    errors = int(result.get("errors") or 0)
    if errors:
        kinds = error_kinds_text(result.get("errors_by_kind"))
        text = f"{errors} rollout(s) reached no verdict ({kinds}): not counted as attempts"
        transient = int(result.get("transient_errors") or 0)
        if transient:
            text += (
                f"; {transient} may pass if run again: envpools jobs resume {job_id} --retry-errors"
            )
        info(text)
    unpriced = int(result.get("unpriced_rollouts") or 0)
    if unpriced:
        models = ", ".join(result.get("unpriced_models") or []) or "their model"
        warn(
            f"cost unknown for {unpriced} rollout(s): no price for {models} (the backend "
            "prices tokens from its table: ENVPOOLS_PRICE_TABLE)"
        )


def emit_result(job: dict[str, Any], result: dict[str, Any], fmt: str) -> None:
    """A job's result table: task x agent rows, then totals per agent/model; errors and
    unknown costs are said on stderr whatever the format."""
    _emit_result(job, result, fmt)
    _notes(result, str(job["id"]))


def _emit_result(job: dict[str, Any], result: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        write_out(dump_json({"job": job, "result": result}) + "\n")
        return
    if fmt == "yaml":
        import yaml

        write_out(yaml.safe_dump({"job": job, "result": result}, sort_keys=False))
        return
    rows = result_rows(result)
    if fmt == "jsonl":
        write_out("".join(dump_json(r, pretty=False) + "\n" for r in rows))
        return
    if fmt == "csv":
        write_out(_csv(rows, _CSV_FIELDS))
        return
    if fmt == "name":
        write_out(f"{job['id']}\n")
        return
    k = int(result["k"])
    width = _console_width() if is_tty() else None
    groups = [_decorate(r) for r in result["groups"]]
    totals = [_decorate(r) for r in result["totals"]]
    if is_tty():
        from envpools_cli.output.describe import wrap

        header = (
            f"{job['id']}  {clean(str(job['name']))}  {job['status']}  "
            f"{result['ended']}/{result['planned']} ended"
        )
        write_out("".join(line + "\n" for line in wrap(header, width or 80)))
    _table(groups, _result_columns(k, totals=False, width=width))
    write_out("\n")
    _table(totals, _result_columns(k, totals=True, width=width))


def _rollout_columns(width: int | None) -> list[Column]:
    wide = width is None or width >= _WIDE
    columns = [
        Column("ROLLOUT", "rollout_id", kind="id"),
        Column("TASK", "task_id"),
        Column("AGENT", "agent", kind="fixed"),
    ]
    if wide:
        columns.append(Column("MODEL", "_model"))
    columns += [
        Column("#", "attempt", kind="fixed"),
        Column("STATUS", "status", kind="fixed"),
        Column("REWARD", "reward", lambda v: "-" if v is None else f"{v:g}", kind="fixed"),
    ]
    if wide:
        columns += [
            Column("TIME", "duration_sec", fmt_duration, kind="fixed"),
            Column("COST", "_cost", kind="fixed"),
        ]
    # An error code gives way after the task name does (ratio), and names its kind where
    # there is room (``verifier: reward_missing``).
    columns.append(Column("ERROR", "_error_wide" if wide else "_error", ratio=2))
    return columns


def _rollout_row(row: dict[str, Any]) -> dict[str, Any]:
    error = row.get("error") if isinstance(row.get("error"), dict) else {}
    code = error.get("code") if error else None
    kind = row.get("error_kind")
    cost = row.get("cost_usd")
    return {
        **row,
        "_model": row.get("model") or row.get("model_used") or "-",
        "_cost": "-" if "cost_usd" not in row else "unknown" if cost is None else fmt_cost(cost),
        "_error": code or "-",
        "_error_wide": f"{kind}: {code}" if kind and code else (code or "-"),
    }


def emit_rollouts(rows: Sequence[dict[str, Any]], fmt: str) -> None:
    """One row per rollout of a job."""
    if fmt == "json":
        write_out(dump_json(list(rows)) + "\n")
    elif fmt == "jsonl":
        write_out("".join(dump_json(r, pretty=False) + "\n" for r in rows))
    elif fmt == "yaml":
        import yaml

        write_out(yaml.safe_dump(list(rows), sort_keys=False))
    elif fmt == "csv":
        fields = [
            "rollout_id",
            "task_id",
            "agent",
            "model",
            "model_used",
            "attempt",
            "status",
            "error_kind",
            "reward",
            "passed",
            "duration_sec",
            "input_tokens",
            "output_tokens",
            "cache_tokens",
            "cost_usd",
            "created_at",
            "started_at",
            "finished_at",
        ]
        coded = [{**r, "error_code": (r.get("error") or {}).get("code")} for r in rows]
        write_out(_csv(coded, [*fields[:8], "error_code", *fields[8:]]))
    elif fmt == "name":
        write_out("".join(f"{r['rollout_id']}\n" for r in rows if r.get("rollout_id")))
    else:
        width = _console_width() if is_tty() else None
        _table([_rollout_row(r) for r in rows], _rollout_columns(width))


_JOB_COLUMNS = [
    Column("ID", "id", kind="id"),
    Column("NAME", "name"),
    Column("STATUS", "status", kind="fixed"),
    Column("DONE", "_done", kind="fixed"),
    Column("PASS", "pass_rate", fmt_percent, kind="fixed"),
    Column("ERR", "errors", fmt_errors, kind="fixed"),
    Column("COST", "_cost", kind="fixed"),
    Column("AGE", "created_at", kind="age"),
]


def emit_jobs(jobs: Sequence[dict[str, Any]], fmt: str) -> None:
    if fmt in ("json", "jsonl", "yaml", "csv", "name"):
        if fmt == "json":
            write_out(dump_json(list(jobs)) + "\n")
        elif fmt == "jsonl":
            write_out("".join(dump_json(j, pretty=False) + "\n" for j in jobs))
        elif fmt == "yaml":
            import yaml

            write_out(yaml.safe_dump(list(jobs), sort_keys=False))
        elif fmt == "csv":
            fields = ["id", "name", "status", "ended", "total", "pass_rate", "errors", "cost_usd"]
            write_out(_csv(jobs, [*fields, "created_at", "pool_id"]))
        else:
            write_out("".join(f"{j['id']}\n" for j in jobs))
        return
    if not jobs:
        from envpools_cli.output.messages import info

        info("no jobs yet: envpools jobs run --tasks DIR --agent AGENT")
        return
    rows = [{**j, "_done": f"{j['ended']}/{j['total']}", "_cost": fmt_row_cost(j)} for j in jobs]
    _table(rows, _JOB_COLUMNS)


def emit_comparison(
    a: dict[str, Any], b: dict[str, Any], comparison: dict[str, Any], fmt: str
) -> None:
    """Job B against job A: what changed, task by task, then the totals."""
    if fmt in ("json", "yaml"):
        document = {"a": a, "b": b, **comparison}
        if fmt == "json":
            write_out(dump_json(document) + "\n")
        else:
            import yaml

            write_out(yaml.safe_dump(document, sort_keys=False))
        return
    rows = [{"scope": "task", **r} for r in comparison["rows"]] + [
        {"scope": "agent", **r} for r in comparison["totals"]
    ]
    if fmt == "jsonl":
        write_out("".join(dump_json(r, pretty=False) + "\n" for r in rows))
        return
    if fmt == "csv":
        fields = [
            "scope",
            "task_id",
            "agent",
            "model",
            "a_attempts",
            "a_passes",
            "a_pass_rate",
            "a_errors",
            "b_attempts",
            "b_passes",
            "b_pass_rate",
            "b_errors",
            "delta_pass_rate",
            "change",
        ]
        write_out(_csv(rows, fields))
        return
    if fmt == "name":
        return

    def passes(prefix: str) -> Any:
        return lambda row: f"{row[prefix + '_passes']}/{row[prefix + '_attempts']}"

    def delta(value: Any) -> str:
        return "-" if value is None else f"{value:+.2f}"

    def cost(prefix: str) -> Any:
        def text(row: dict[str, Any]) -> str:
            if f"{prefix}_cost_usd" not in row:
                return "-"
            value = row[f"{prefix}_cost_usd"]
            return "unknown" if value is None else fmt_cost(value)

        return text

    task_rows = [
        {**r, "_a": passes("a")(r), "_b": passes("b")(r)}
        for r in comparison["rows"]
        if r["change"] != "same"
    ]
    columns = [
        Column("TASK", "task_id", ratio=2),
        Column("AGENT", "agent_label", kind="id"),
        Column("A", "_a", kind="fixed"),
        Column("B", "_b", kind="fixed"),
        Column("DELTA", "delta_pass_rate", delta, kind="fixed"),
        Column("CHANGE", "change", kind="fixed"),
    ]
    from envpools_cli.output.messages import info

    info(f"A = {a['id']} ({clean(str(a['name']))}), B = {b['id']} ({clean(str(b['name']))})")
    if task_rows:
        _table(task_rows, columns)
        write_out("\n")
    else:
        info("no task changed")
    total_rows = [
        {
            **r,
            "_a": passes("a")(r),
            "_b": passes("b")(r),
            "_a_cost": cost("a")(r),
            "_b_cost": cost("b")(r),
        }
        for r in comparison["totals"]
    ]
    total_columns = [
        Column("AGENT", "agent_label", kind="id"),
        Column("A", "_a", kind="fixed"),
        Column("A RATE", "a_pass_rate", fmt_percent, kind="fixed"),
        Column("A ERR", "a_errors", fmt_errors, kind="fixed"),
        Column("B", "_b", kind="fixed"),
        Column("B RATE", "b_pass_rate", fmt_percent, kind="fixed"),
        Column("B ERR", "b_errors", fmt_errors, kind="fixed"),
        Column("DELTA", "delta_pass_rate", delta, kind="fixed"),
        Column("A COST", "_a_cost", kind="fixed"),
        Column("B COST", "_b_cost", kind="fixed"),
    ]
    _table(total_rows, total_columns)
    counts = comparison["counts"]
    info(
        f"{counts.get('newly passing', 0)} newly passing, {counts.get('newly failing', 0)} "
        f"newly failing, {counts.get('better', 0)} better, {counts.get('worse', 0)} worse, "
        f"{counts.get('same', 0)} unchanged"
    )


# --- live progress --------------------------------------------------------------------------


def _summary_line(snap: dict[str, Any]) -> str:
    rate = snap["pass_rate"]
    parts = [
        f"{snap['done']}/{snap['total']} done",
        f"{snap['running']} running",
        f"{snap['queued']} queued",
        f"pass {snap['passes']}/{snap['attempts']}"
        + (f" ({100 * rate:.0f}%)" if rate is not None else ""),
    ]
    if snap.get("errors"):
        parts.append(f"{snap['errors']} error{'s' if snap['errors'] != 1 else ''}")
    unknown = snap.get("cost_unknown")
    parts.append(
        fmt_cost(snap["cost_usd"])
        if not unknown
        else f"cost unknown ({fmt_cost(snap['cost_usd'])} known)"
        if snap["cost_usd"]
        else "cost unknown"
    )
    if snap["eta_sec"] is not None:
        parts.append(f"ETA {fmt_duration(snap['eta_sec'])}")
    return " | ".join(parts)


def _result_line(trial: Trial, result: Result, passed: bool) -> str:
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    kind = result.error_kind
    if passed:
        verdict = "pass"
    elif kind is not None:
        verdict = "error"  # no verdict: counted apart, never as the agent's failure
    elif RolloutStatus.succeeded(result.status):
        verdict = "fail"  # it ran and was scored, below --pass-reward
    else:
        verdict = result.status
    reward = "-" if result.reward is None else f"{result.reward:g}"
    error = (result.error or {}).get("code")
    why = f"{kind}: {error}" if kind and error else kind or error
    return (
        f"{verdict:<9} {clean(trial.task_id)}  {clean(trial.agent.label)}  #{trial.attempt}  "
        f"reward {reward}  {fmt_duration(result.duration_sec)}"
        + (f"  ({clean(str(why))})" if why else "")
        + f"  {result.rollout_id or ''}"
    )


def _finish_message(progress: Progress, outcome: Outcome) -> str:
    job_id = progress.job.id
    snap = progress.snapshot()
    text = f"job {job_id}: {snap['done']}/{snap['total']} rollouts ended"
    if outcome.reason == "interrupted":
        return text + f"; interrupted. Continue with: envpools jobs resume {job_id}"
    if outcome.reason == "timeout":
        return text + (
            "; --timeout reached, the running rollouts go on. Continue with: "
            f"envpools jobs resume {job_id}"
        )
    if outcome.reason == "cancelled":
        return text + "; cancelled"
    if outcome.errors:
        return text + (
            f"; {len(outcome.errors)} have no result (see the errors above). "
            f"Try again with: envpools jobs resume {job_id}"
        )
    return text


class LineProgress:
    """Plain lines on stderr: one per ended rollout, and every problem."""

    def __init__(self) -> None:
        self.stream = sys.stderr

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def started(self, progress: Progress, *, resumed: int) -> None:
        job = progress.job
        text = (
            f"job {job.id} ({clean(job.name)}): {len(job.task_ids)} tasks x "
            f"{len(job.agents)} agents x {job.attempts} attempts = {job.total} rollouts "
            f"in pool {job.pool_id}"
        )
        if resumed:
            text += f"; {resumed} already ended"
        self._write(text)

    def changed(self, progress: Progress) -> None:
        pass

    def ended(self, progress: Progress, trial: Trial, result: Result) -> None:
        snap = progress.snapshot()
        width = len(str(snap["total"]))
        self._write(
            f"[{snap['done']:>{width}}/{snap['total']}] "
            + _result_line(trial, result, progress.passed(result))
        )

    def problem(self, progress: Progress, trial: Trial | None, message: str) -> None:
        where = (
            f"{clean(trial.task_id)} {clean(trial.agent.label)} #{trial.attempt}: " if trial else ""
        )
        self._write(f"warning: {where}{clean(message)}")

    def finished(self, progress: Progress, outcome: Outcome) -> None:
        self._write(_summary_line(progress.snapshot()))
        self._write(_finish_message(progress, outcome))


class LiveProgress(LineProgress):
    """A Rich live display on stderr; failures are printed above it as they happen."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True, no_color=not color_enabled(sys.stderr), highlight=False)
        self.live: Any = None
        self.progress: Progress | None = None

    def _write(self, text: str) -> None:
        # Through Rich: a line wider than the terminal wraps between words, never inside
        # an id or a command to copy.
        from rich.text import Text

        with contextlib.suppress(BrokenPipeError, ValueError):
            self.console.print(Text(text))

    def started(self, progress: Progress, *, resumed: int) -> None:
        from rich.live import Live

        super().started(progress, resumed=resumed)
        self.progress = progress
        self.live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        if self.progress is None:
            return Text("")
        snap = self.progress.snapshot()
        bar = ProgressBar(total=max(1, snap["total"]), completed=snap["done"], width=30)
        head = Table.grid(padding=(0, 1))
        head.add_row(bar, Text(_summary_line(snap)))
        parts: list[Any] = [head]
        if snap["slowest"]:
            # The id first and whole; the task and the agent give way (with an ellipsis).
            table = Table.grid(padding=(0, 2))
            table.add_column(no_wrap=True)
            table.add_column(no_wrap=True, min_width=len("ro_") + 21)
            table.add_column(no_wrap=True)
            table.add_column(no_wrap=True, overflow="ellipsis")
            table.add_column(no_wrap=True, overflow="ellipsis")
            table.add_column(no_wrap=True)
            for item in snap["slowest"]:
                table.add_row(
                    Text(fmt_duration(item["elapsed_sec"]), style="dim"),
                    Text(str(item["rollout_id"] or "(creating)"), style="dim"),
                    Text(item["status"]),
                    Text(clean(item["task_id"])),
                    Text(clean(item["agent"])),
                    Text(f"#{item['attempt']}"),
                )
            parts.append(Text("slowest running:", style="dim"))
            parts.append(table)
        return Group(*parts)

    def ended(self, progress: Progress, trial: Trial, result: Result) -> None:
        if not progress.passed(result) and self.live is not None:
            from rich.text import Text

            line = Text("✗ " + _result_line(trial, result, progress.passed(result)), style="red")
            self.live.console.print(line)

    def problem(self, progress: Progress, trial: Trial | None, message: str) -> None:
        if self.live is None:
            super().problem(progress, trial, message)
            return
        from rich.text import Text

        where = f"{trial.task_id} {trial.agent.label} #{trial.attempt}: " if trial else ""
        self.live.console.print(Text(f"warning: {clean(where + message)}", style="yellow"))

    def finished(self, progress: Progress, outcome: Outcome) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        super().finished(progress, outcome)


def make_progress() -> LineProgress:
    """A live display when stderr is a terminal, plain lines otherwise."""
    return LiveProgress() if is_tty(sys.stderr) else LineProgress()
