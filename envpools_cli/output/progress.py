"""Progress of ``rollouts wait`` and ``create --wait``, on stderr.

On a terminal: a live line per rollout (spinner, whole id, status, time waited), redrawn
in place. Otherwise: one plain line per status change. Either way a rollout that ends
without success says why (its error code and message), and the summary counts the
rollouts that *passed* (reward at or above the bar) apart from the ones that succeeded:
a rollout can succeed and score 0.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import color_enabled, is_tty

__all__ = ["WaitProgress", "count_progress", "download_progress", "passed", "summary_line"]


def passed(doc: dict[str, Any], min_reward: float | None) -> bool:
    """Succeeded and scored: reward >= ``min_reward``, or reward > 0 without one."""
    from envpools_cli.models import RolloutStatus

    if not RolloutStatus.succeeded(doc.get("status")):
        return False
    reward = doc.get("reward_primary")
    if not isinstance(reward, int | float) or isinstance(reward, bool):
        return False
    return reward >= min_reward if min_reward is not None else reward > 0


def summary_line(
    docs: list[dict[str, Any]], min_reward: float | None, still_running: int, timeout: float
) -> str:
    """``2/2 succeeded, 0 passed (reward > 0)``, then what else happened."""
    from envpools_cli.models import RolloutStatus

    succeeded = sum(1 for d in docs if RolloutStatus.succeeded(d.get("status")))
    scored = sum(1 for d in docs if passed(d, min_reward))
    bar = f"reward ≥ {min_reward:g}" if min_reward is not None else "reward > 0"
    line = f"{succeeded}/{len(docs)} succeeded, {scored} passed ({bar})"
    others: dict[str, int] = {}
    for doc in docs:
        status = RolloutStatus.parse(doc.get("status"))
        if status is not None and status.is_terminal and not status.is_success:
            others[status.value] = others.get(status.value, 0) + 1
    line += "".join(f", {count} {status}" for status, count in sorted(others.items()))
    if still_running:
        line += f", {still_running} still running after {timeout:g}s"
    return line


def why(doc: dict[str, Any]) -> str:
    """Why a rollout did not succeed: ``ro_…: error credentials_missing: harness 'codex': …``."""
    error = doc.get("error")
    line = f"{doc.get('rollout_id')}: {doc.get('status')}"
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        line += f" {code}" if code else ""
        line += f": {clean(str(message))}" if message else ""
    elif error:
        line += f": {clean(str(error))}"
    return line


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class _Row:
    status: str = "…"
    since: float = 0.0
    doc: dict[str, Any] | None = None
    spinner: Any = None
    told: str | None = None
    """The last status said in a plain line (off a terminal)."""
    """One Spinner per row, kept: a new one each frame would always draw its first frame."""


def _moment(value: Any) -> float | None:
    """A server timestamp as a ``time.monotonic()`` reading (clocks agree within skew)."""
    from envpools_cli.output.units import parse_time

    parsed = parse_time(value)
    if parsed is None:
        return None
    ago = max(0.0, time.time() - parsed.timestamp())
    return time.monotonic() - ago


def transition_time(doc: dict[str, Any]) -> float | None:
    """When the rollout entered its current status, by its own timestamps."""
    from envpools_cli.models import RolloutStatus

    status = RolloutStatus.parse(doc.get("status"))
    if status is None:
        return None
    if status.is_terminal:
        key = "finished_at"
    elif status is RolloutStatus.QUEUED:
        key = "created_at"
    else:
        key = "started_at"
    return _moment(doc.get(key) or doc.get("created_at"))


class WaitProgress:
    """Tell the user how each rollout is doing while ``wait`` waits (thread-safe)."""

    def __init__(self, ids: list[str], *, live: bool | None = None) -> None:
        self.started = time.monotonic()
        self.rows = {rid: _Row(since=self.started) for rid in ids}
        self.lock = threading.Lock()
        self.live_enabled = is_tty(sys.stderr) if live is None else live
        self._live: Any = None

    def __enter__(self) -> WaitProgress:
        if self.live_enabled:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=sys.stderr, no_color=not color_enabled(sys.stderr))
            self._live = Live(
                get_renderable=self._render,
                console=console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def seed(self, doc: dict[str, Any]) -> None:
        """The rollout as the wait found it: its status timed from its own transition
        (``created_at`` while queued, ``started_at`` once started), not from when the
        wait began."""
        rollout_id = str(doc.get("rollout_id"))
        since = transition_time(doc)
        with self.lock:
            row = self.rows.setdefault(rollout_id, _Row(since=self.started))
            if row.status == "…" and doc.get("status"):
                row.status = str(doc["status"])
                row.since = since if since is not None else row.since

    def status(self, rollout_id: str, status: str) -> None:
        """The rollout moved to ``status`` (heard live: now is when it did)."""
        with self.lock:
            row = self.rows[rollout_id]
            if row.status != status:  # else the seed placed it already, with its own time
                row.status, row.since = status, time.monotonic()
            told, row.told = row.told, status
        if self._live is None and told != status:
            from envpools_cli.output.messages import info

            info(f"{rollout_id}: {status}")

    def finished(self, doc: dict[str, Any]) -> None:
        """The rollout's last state (terminal, or where it was when the wait ran out)."""
        rollout_id = str(doc.get("rollout_id"))
        with self.lock:
            row = self.rows.setdefault(rollout_id, _Row(since=self.started))
            row.doc = doc
            if doc.get("status") and doc.get("status") != row.status:
                row.status, row.since = str(doc["status"]), time.monotonic()

    def report(self, docs: list[dict[str, Any]], line: str) -> None:
        """After the wait: why each rollout that ended badly did, then the summary."""
        from envpools_cli.models import RolloutStatus
        from envpools_cli.output.messages import info

        for doc in docs:
            status = RolloutStatus.parse(doc.get("status"))
            if status is not None and status.is_terminal and not status.is_success:
                info(why(doc))
        info(line)

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        from envpools_cli.models import RolloutStatus
        from envpools_cli.output.rollouts import STATUS_STYLES

        now = time.monotonic()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(no_wrap=True)  # the id: whole, never folded
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(no_wrap=True, overflow="ellipsis")
        with self.lock:
            rows = list(self.rows.items())
        for rollout_id, row in rows:
            status = RolloutStatus.parse(row.status)
            if status is None or not status.is_terminal:
                if row.spinner is None:
                    row.spinner = Spinner("dots", style="cyan")
                mark: Any = row.spinner
            else:
                mark = Text("✓", style="green") if status.is_success else Text("✗", style="red")
            detail = ""
            if row.doc is not None and isinstance(row.doc.get("reward_primary"), int | float):
                detail = f"reward {row.doc['reward_primary']:g}"
            elif row.doc is not None and isinstance(row.doc.get("error"), dict):
                detail = str(row.doc["error"].get("code") or "")
            grid.add_row(
                mark,
                Text(rollout_id),
                Text(row.status, style=STATUS_STYLES.get(row.status, "")),
                Text(_elapsed(now - row.since), style="dim"),
                Text(clean(detail)),
            )
        done = sum(1 for _, row in rows if (s := RolloutStatus.parse(row.status)) and s.is_terminal)
        grid.add_row(
            "", Text(f"{done}/{len(rows)} done · {_elapsed(now - self.started)}", style="dim")
        )
        return grid


def download_progress() -> Any:
    """A progress bar for downloads on stderr (hidden when stderr is not a terminal)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from envpools_cli.output.units import human_bytes

    class BinarySpeed(ProgressColumn):
        # Rich's TransferSpeedColumn only speaks decimal (MB/s); every other size the CLI
        # prints is binary (KiB, MiB, GiB).
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                "?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed"
            )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        BinarySpeed(),
        TimeRemainingColumn(),
        disable=not is_tty(sys.stderr),
        transient=True,
        console=_stderr_console(),
    )


@contextlib.contextmanager
def count_progress(what: str, total: int) -> Iterator[Callable[[], None]]:
    """A bar counting ``total`` things on stderr (hidden when stderr is not a terminal);
    yields the function that counts one (callable from any thread)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not is_tty(sys.stderr) or total == 0,
        transient=True,
        console=_stderr_console(),
    )
    with progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr, no_color=not color_enabled(sys.stderr))
