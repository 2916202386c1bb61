"""What a sandboxed phase prints: its log file under /logs, and a bounded share as events."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from envpools_cli.server.sandbox.limits import Limits
from envpools_cli.server.sandbox.safefs import open_dir

__all__ = ["Events", "PhaseLog"]


class Events(Protocol):
    """Where a phase's lines go (the rollout's runner)."""

    def redact(self, text: str) -> str: ...

    def publish(self, event: str, data: dict[str, Any]) -> None: ...

    def note(self, message: str, **extra: Any) -> None: ...


class PhaseLog:
    """Writes a phase's output to its log file and publishes each line as an event.

    At most ``limits.output_mb`` and ``limits.output_lines`` of a phase become events
    and log lines; past that one event of kind ``truncated`` says so and the rest is
    counted and dropped (but still parsed, so an agent's token counts stay right).
    """

    def __init__(
        self,
        events: Events,
        event: str,
        log_file: Path,
        limits: Limits,
        parse: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self.events = events
        self.event = event
        self.parse = parse
        self.count = 0
        self.kept_bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.limits = limits
        folder = open_dir(log_file.parent)
        try:
            # The folder is the sandbox's: whatever it left under this name is replaced.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(log_file.name, dir_fd=folder)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(log_file.name, flags, 0o644, dir_fd=folder)
        finally:
            os.close(folder)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape")

    def __call__(self, line: str) -> None:
        line = self.events.redact(line)
        data = self.parse(line) if self.parse else {"text": line}
        size = len(line.encode("utf-8", "replace")) + 1
        over = (
            self.count >= self.limits.output_lines
            or self.kept_bytes + size > self.limits.output_mb * 1024 * 1024
        )
        if over or self.dropped_lines:
            if not self.dropped_lines:
                self.events.publish(
                    self.event,
                    {
                        "kind": "truncated",
                        "truncated": True,
                        "line": self.count + 1,
                        "text": f"[output truncated: this phase printed more than "
                        f"{self.limits.output_mb} MB or {self.limits.output_lines} lines; "
                        f"the rest is not kept]",
                        "limit_bytes": self.limits.output_mb * 1024 * 1024,
                        "limit_lines": self.limits.output_lines,
                    },
                )
            self.dropped_lines += 1
            self.dropped_bytes += size
            return
        self.count += 1
        self.kept_bytes += size
        self.handle.write(line + "\n")
        self.events.publish(self.event, {"line": self.count, **data})

    def close(self) -> None:
        self.handle.close()
        if self.dropped_lines:
            self.events.note(
                f"{self.event} output: {self.dropped_lines} more lines "
                f"({self.dropped_bytes} bytes) were dropped after the limit",
                truncated=True,
            )
