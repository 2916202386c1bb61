"""Following a rollout's events: a live view on a terminal, plain lines or JSON otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from envpools_cli.output.describe import wrap
from envpools_cli.output.rollouts import (
    EVENT_STYLES,
    STATUS_STYLES,
    describe_event,
    event_time,
)
from envpools_cli.output.streams import color_enabled, dump_json, is_tty, write_out
from envpools_cli.shared import end_event

__all__ = ["TailView", "make_view"]


class TailView:
    """Plain lines on stdout; notices on stderr."""

    def __init__(self, rollout_id: str) -> None:
        self.rollout_id = rollout_id
        self.count = 0
        self.status: str | None = None

    def __enter__(self) -> TailView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def notice(self, text: str) -> None:
        from envpools_cli.output.messages import info

        info(text)

    def reconnecting(self, attempt: int, delay: float, error: Exception) -> None:
        self.notice(
            f"connection lost ({type(error).__name__}); reconnecting in {delay:.1f}s "
            f"(attempt {attempt}), resuming after the last event"
        )

    def resuming(self, reason: str) -> None:
        """The connection another reader had (tail's fast path) was cut: said here, once."""
        self.notice(f"connection lost ({reason}); reconnecting, resuming after the last event")

    def heartbeat(self) -> None:
        pass

    def event(self, envelope: dict[str, Any]) -> None:
        self.count += 1
        data = envelope.get("data")
        if envelope.get("event") == "lifecycle" and isinstance(data, dict):
            self.status = str(data.get("status") or self.status)
        write_out(self.line(envelope) + "\n")

    @staticmethod
    def line(envelope: dict[str, Any]) -> str:
        return f"{event_time(envelope)}  {envelope.get('event')!s:<9}  " + describe_event(envelope)

    def end(self, reason: str, status: str | None) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLinesView(TailView):
    def event(self, envelope: dict[str, Any]) -> None:
        self.count += 1
        write_out(dump_json(envelope, pretty=False) + "\n")

    def end(self, reason: str, status: str | None) -> None:
        write_out(dump_json(end_event(reason, status), pretty=False) + "\n")


class JsonArrayView(TailView):
    def __init__(self, rollout_id: str) -> None:
        super().__init__(rollout_id)
        self.events: list[dict[str, Any]] = []

    def event(self, envelope: dict[str, Any]) -> None:
        self.count += 1
        self.events.append(envelope)

    def close(self) -> None:
        write_out(dump_json(self.events) + "\n")


class LiveView(TailView):
    """Events scroll on the terminal above a status line that stays at the bottom."""

    def __init__(self, rollout_id: str) -> None:
        super().__init__(rollout_id)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=sys.stdout, highlight=False, no_color=not color_enabled())
        self.started = time.monotonic()
        self.last_beat: float | None = None
        self.reconnect_note: str | None = None
        self.last_refresh = 0.0
        self.live = Live(
            self._footer(),
            console=self.console,
            refresh_per_second=4,
            transient=True,
            get_renderable=self._footer,
        )
        self.live.start()

    def _footer(self) -> Any:
        from rich.text import Text

        status = self.status or "…"
        text = Text()
        text.append(f"● {self.rollout_id} ", style="bold")
        text.append(status, style=STATUS_STYLES.get(status, ""))
        text.append(f"  {time.monotonic() - self.started:5.0f}s  {self.count} events", style="dim")
        if self.last_beat is not None:
            text.append(f"  ♥ {time.monotonic() - self.last_beat:.0f}s ago", style="dim")
        if self.reconnect_note:
            text.append(f"  {self.reconnect_note}", style="bold magenta")
        return text

    def notice(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(text, style="dim"))

    def reconnecting(self, attempt: int, delay: float, error: Exception) -> None:
        self.reconnect_note = f"reconnecting (attempt {attempt})…"
        self.notice(f"connection lost ({type(error).__name__}); reconnecting in {delay:.1f}s")

    def heartbeat(self) -> None:
        self.last_beat = time.monotonic()

    def event(self, envelope: dict[str, Any]) -> None:
        from rich.text import Text

        self.count += 1
        self.reconnect_note = None
        kind = str(envelope.get("event"))
        data = envelope.get("data")
        style = EVENT_STYLES.get(kind, "")
        if kind == "lifecycle" and isinstance(data, dict):
            self.status = str(data.get("status") or self.status)
            style = STATUS_STYLES.get(self.status, style) + " bold"
        if kind == "reward" and isinstance(data, dict):
            reward = data.get("reward")
            style = "bold green" if isinstance(reward, int | float) and reward > 0 else "bold red"
        # Wrapped here, between words, under the text column: left to the terminal, a long
        # agent message would break mid-word and run back under the time column.
        head = f"{event_time(envelope)}  {kind:<9}  "
        body = wrap(describe_event(envelope), self.console.width - len(head) - 1)
        for n, part in enumerate(body):
            line = Text()
            if n == 0:
                line.append(event_time(envelope) + "  ", style="dim")
                line.append(f"{kind:<9}  ", style=style)
            else:
                line.append(" " * len(head))
            line.append(part, style=style if kind != "agent" else "")
            self.console.print(line, soft_wrap=True)
        now = time.monotonic()
        if now - self.last_refresh > 0.1:  # keep the status line current, at most 10/s
            self.last_refresh = now
            self.live.refresh()

    def close(self) -> None:
        self.live.stop()


def make_view(rollout_id: str, fmt: str) -> TailView:
    if fmt == "jsonl":
        return JsonLinesView(rollout_id)
    if fmt == "json":
        return JsonArrayView(rollout_id)
    if is_tty(sys.stdout):
        return LiveView(rollout_id)
    return TailView(rollout_id)
