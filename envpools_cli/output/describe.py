"""One resource as sections, the way ``kubectl describe`` and ``gh pr view`` show one.

A view is a list of sections, each a list of ``Label: value`` rows. On a terminal the
values wrap at word boundaries (a long path or JSON breaks after ``/``, ``,`` or ``-``,
never inside a word) into the value column, and section titles are bold; piped, every
row stays on one line so ``grep`` and ``cut`` see whole values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import color_enabled, is_tty, write_out
from envpools_cli.output.units import parse_time, relative_age

__all__ = ["Section", "compact", "moment", "print_sections", "render_sections", "wrap"]

#: A label column wider than this pushes long labels' values onto the next line instead.
_MAX_LABEL = 18
_INDENT = 2
#: Where a token too long for the line may break: after one of these.
_BREAK_AFTER = re.compile(r"(?<=[/,\-_.:=&?])")


@dataclass
class Section:
    """A titled group of rows; the first section of a view usually has no title."""

    title: str | None
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: Any) -> None:
        """Add a row unless the value is empty (None, "", [], {})."""
        if value is None or value == "" or value == [] or value == {}:
            return
        self.rows.append((label, clean(value) if isinstance(value, str) else compact(value)))


def compact(value: Any) -> str:
    """A value as one line: numbers plain, lists comma-joined, objects as compact JSON."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return clean(str(value))


def moment(value: Any, *, terminal: bool) -> str | None:
    """A timestamp: exactly as sent when piped; on a terminal to the second, in UTC, with its
    age: ``2025-01-10T11:56:59Z (3m ago)``."""
    parsed = parse_time(value)
    if parsed is None:
        return None if value is None else str(value)
    if not terminal:
        return str(value)
    stamp = parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({relative_age(value)} ago)"


def _pieces(word: str, room: int) -> list[str]:
    """``word`` cut into runs no longer than ``room``, at break characters where possible."""
    if len(word) <= room:
        return [word]
    parts = [p for p in _BREAK_AFTER.split(word) if p]
    out: list[str] = []
    line = ""
    for part in parts:
        while len(part) > room:  # no break character within reach: cut it
            if line:
                out.append(line)
                line = ""
            out.append(part[:room])
            part = part[room:]
        if len(line) + len(part) > room:
            out.append(line)
            line = part
        else:
            line += part
    if line:
        out.append(line)
    return out


def wrap(text: str, room: int) -> list[str]:
    """``text`` in lines of at most ``room`` characters, broken between words."""
    room = max(room, 10)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            if not word:
                continue
            candidate = f"{line} {word}" if line else word
            if len(candidate) <= room:
                line = candidate
                continue
            if line:
                lines.append(line)
                line = ""
            pieces = _pieces(word, room)
            lines += pieces[:-1]
            line = pieces[-1]
        lines.append(line)
    return lines


def render_sections(sections: Sequence[Section], width: int | None) -> list[tuple[str, bool]]:
    """The view's lines, each with whether it is a section title; ``width=None``: no wrapping."""
    out: list[tuple[str, bool]] = []
    for section in sections:
        if not section.rows:
            continue
        if out:
            out.append(("", False))
        indent = ""
        if section.title is not None:
            out.append((f"{section.title}:", True))
            indent = " " * _INDENT
        label_width = min(_MAX_LABEL, max(len(label) for label, _ in section.rows) + 1)
        for label, value in section.rows:
            head = f"{indent}{label}:".ljust(len(indent) + label_width + 1)
            if width is None:
                out.append((f"{head} {value}".rstrip(), False))
                continue
            if len(head) + 1 > len(indent) + _MAX_LABEL + 2:
                # A long label: its value starts on the next line, under the labels.
                out.append((head.rstrip(), False))
                head = " " * (len(indent) + _INDENT)
            else:
                head += " "
            for n, line in enumerate(wrap(value, width - len(head))):
                out.append(((head if n == 0 else " " * len(head)) + line, False))
    return out


def print_sections(sections: Iterable[Section]) -> None:
    """Print a view on stdout: wrapped to the terminal, or one row a line when piped."""
    sections = list(sections)
    if not is_tty():
        write_out("".join(line + "\n" for line, _ in render_sections(sections, None)))
        return
    from rich.console import Console

    console = Console(highlight=False)
    bold = color_enabled()
    lines = render_sections(sections, console.width)
    write_out(
        "".join(
            (f"\x1b[1m{line}\x1b[0m" if title and bold else line) + "\n" for line, title in lines
        )
    )
