"""Eval jobs on screen: the live progress of a run, result tables, job lists, comparisons.

Progress goes to stderr (a Rich live display on a terminal, one line per ended rollout
otherwise); tables and documents go to stdout. Result tables fit 80 columns: the task
and agent columns fold, and the optional columns (errors, tokens, cost per success)
appear only when the terminal is wide enough.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from envpools_cli.output.formats import Column, plain_value
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


def _pass_text(row: dict[str, Any]) -> str:
    text = f"{row['passes']}/{row['attempts']}"
    missing = row["planned"] - row["attempts"] - row["cancelled"]
    return text + ("+" if missing > 0 else "")


def _result_columns(k: int, *, totals: bool, width: int | None) -> list[Column]:
    """Columns for a terminal ``width`` wide (None: plain text, every column).

    PASS@1 is the unbiased estimator with k=1, which is exactly passes/attempts: narrow
    terminals keep the PASS column and leave it out.
    """
    columns = (
        [Column("AGENT", "agent_label")]
        if totals
        else [
            Column("TASK", "task_id"),
            Column("AGENT", "agent_label"),
        ]
    )
    columns.append(Column("PASS", "_pass"))
    if totals:
        columns.append(Column("RATE", "pass_rate", fmt_percent))
    if k > 1 and (width is None or width >= 100):
        columns.append(Column("PASS@1", "pass_at_1", fmt_rate))
    columns += [
        Column(f"PASS@{k}", "pass_at_k", fmt_rate),
        Column("95% CI", "_ci"),
        Column("REWARD", "mean_reward", fmt_rate),
        Column("TIME", "mean_duration_sec", fmt_duration),
        Column("COST", "cost_usd", fmt_cost),
    ]
    if width is None or width >= 110:
        columns += [
            Column("ERR", "errors"),
            Column("TOKENS", "_tokens"),
            Column("$/PASS", "cost_per_success", fmt_cost),
        ]
    return columns


def _decorate(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "_pass": _pass_text(row),
        "_ci": fmt_interval(row.get("ci_low"), row.get("ci_high")),
        "_tokens": f"{fmt_count(row['input_tokens'])}/{fmt_count(row['output_tokens'])}",
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
    "k",
    "planned",
    "tasks",
    "attempts",
    "passes",
    "failures",
    "errors",
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
    "cost_usd",
    "cost_per_success",
)


def _csv(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    return buffer.getvalue()


def _console_width() -> int:
    from rich.console import Console

    return Console(file=sys.stdout).width


#: Columns of words (left-aligned, may fold); every other column holds a figure.
_TEXT_KEYS = frozenset(
    {"task_id", "agent_label", "_ci", "id", "name", "status", "change", "rollout_id", "error"}
)


def _rich_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str | None = None
) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout, no_color=not color_enabled(), highlight=False)
    table = Table(
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        header_style="bold",
        pad_edge=False,
        # Narrow terminals get one space between columns (the box's divider) to fit 80.
        padding=(0, 0) if console.width < 100 else (0, 1),
    )
    for column in columns:
        numeric = column.key not in _TEXT_KEYS
        table.add_column(
            column.header,
            overflow="fold",
            justify="right" if numeric else "left",
            no_wrap=numeric,
        )
    for row in rows:
        table.add_row(*(Text(column.text(row)) for column in columns))
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def _plain_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    lines = ["\t".join(c.header for c in columns)]
    lines += ["\t".join(c.text(r) for c in columns) for r in rows]
    return "".join(line + "\n" for line in lines)


def _table(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str | None = None
) -> str:
    return _rich_table(rows, columns, title) if is_tty() else _plain_table(rows, columns)


def emit_result(job: dict[str, Any], result: dict[str, Any], fmt: str) -> None:
    """A job's result table: task x agent rows, then totals per agent/model."""
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
        header = (
            f"{job['id']}  {clean(str(job['name']))}  {job['status']}  "
            f"{result['ended']}/{result['planned']} ended"
        )
        write_out(header + "\n")
    write_out(_table(groups, _result_columns(k, totals=False, width=width)))
    write_out("\n")
    write_out(_table(totals, _result_columns(k, totals=True, width=width)))


_ROLLOUT_COLUMNS = [
    Column("ROLLOUT", "rollout_id", kind="id"),
    Column("TASK", "task_id"),
    Column("AGENT", "agent_label"),
    Column("#", "attempt"),
    Column("STATUS", "status"),
    Column("REWARD", "reward", lambda v: "-" if v is None else f"{v:g}"),
    Column("TIME", "duration_sec", fmt_duration),
    Column("COST", "cost_usd", fmt_cost),
    Column("ERROR", "error", lambda v: plain_value((v or {}).get("code"))),
]


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
            "attempt",
            "status",
            "reward",
            "passed",
            "duration_sec",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "created_at",
            "started_at",
            "finished_at",
        ]
        write_out(_csv(rows, fields))
    elif fmt == "name":
        write_out("".join(f"{r['rollout_id']}\n" for r in rows if r.get("rollout_id")))
    else:
        write_out(_table(rows, _ROLLOUT_COLUMNS))


_JOB_COLUMNS = [
    Column("ID", "id", kind="id"),
    Column("NAME", "name"),
    Column("STATUS", "status"),
    Column("DONE", "_done"),
    Column("PASS", "pass_rate", fmt_percent),
    Column("COST", "cost_usd", fmt_cost),
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
            fields = ["id", "name", "status", "ended", "total", "pass_rate", "cost_usd"]
            write_out(_csv(jobs, [*fields, "created_at", "pool_id"]))
        else:
            write_out("".join(f"{j['id']}\n" for j in jobs))
        return
    if not jobs:
        from envpools_cli.output.messages import info

        info("no jobs yet: envpools jobs run --tasks DIR --agent AGENT")
        return
    rows = [{**j, "_done": f"{j['ended']}/{j['total']}"} for j in jobs]
    write_out(_table(rows, _JOB_COLUMNS))


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
            "b_attempts",
            "b_passes",
            "b_pass_rate",
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

    task_rows = [
        {**r, "_a": passes("a")(r), "_b": passes("b")(r)}
        for r in comparison["rows"]
        if r["change"] != "same"
    ]
    columns = [
        Column("TASK", "task_id"),
        Column("AGENT", "agent_label"),
        Column("A", "_a"),
        Column("B", "_b"),
        Column("DELTA", "delta_pass_rate", delta),
        Column("CHANGE", "change"),
    ]
    from envpools_cli.output.messages import info

    info(f"A = {a['id']} ({clean(str(a['name']))}), B = {b['id']} ({clean(str(b['name']))})")
    if task_rows:
        write_out(_table(task_rows, columns))
        write_out("\n")
    else:
        info("no task changed")
    total_rows = [
        {
            **r,
            "_a": passes("a")(r),
            "_b": passes("b")(r),
        }
        for r in comparison["totals"]
    ]
    total_columns = [
        Column("AGENT", "agent_label"),
        Column("A", "_a"),
        Column("A RATE", "a_pass_rate", fmt_percent),
        Column("B", "_b"),
        Column("B RATE", "b_pass_rate", fmt_percent),
        Column("DELTA", "delta_pass_rate", delta),
        Column("A COST", "a_cost_usd", fmt_cost),
        Column("B COST", "b_cost_usd", fmt_cost),
    ]
    write_out(_table(total_rows, total_columns))
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
        fmt_cost(snap["cost_usd"]),
    ]
    if snap["eta_sec"] is not None:
        parts.append(f"ETA {fmt_duration(snap['eta_sec'])}")
    return " | ".join(parts)


def _result_line(trial: Trial, result: Result, passed: bool) -> str:
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    if passed:
        verdict = "pass"
    elif RolloutStatus.succeeded(result.status):
        verdict = "fail"  # it ran and was scored, below --pass-reward
    else:
        verdict = result.status
    reward = "-" if result.reward is None else f"{result.reward:g}"
    error = (result.error or {}).get("code")
    return (
        f"{verdict:<9} {clean(trial.task_id)}  {clean(trial.agent.label)}  #{trial.attempt}  "
        f"reward {reward}  {fmt_duration(result.duration_sec)}"
        + (f"  ({clean(str(error))})" if error else "")
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
            table = Table.grid(padding=(0, 2))
            for item in snap["slowest"]:
                table.add_row(
                    Text(fmt_duration(item["elapsed_sec"]), style="dim"),
                    Text(item["status"]),
                    Text(clean(item["task_id"])),
                    Text(clean(item["agent"])),
                    Text(f"#{item['attempt']}"),
                    Text(str(item["rollout_id"] or ""), style="dim"),
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
