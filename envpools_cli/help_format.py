"""How ``--help`` is laid out: words never cut, examples that survive copy and paste.

Click wraps help with ``textwrap`` defaults: a line may break after any hyphen and inside
a word too long for it, so ``--task envpools-examples/fix-failing-test`` became
``--task envpools-`` / ``examples/fix-failing-test`` and a pasted example ran something
else. Here text wraps between words only, and an ``Example:`` paragraph is laid out as a
shell command: its own lines, broken between arguments (never inside quotes) with a
``\\`` at the end of each line but the last, so what is pasted is what was meant.

Arguments show as ``ROLLOUT_ID...`` rather than Typer's ``rollout_ids <list[str]>``:
help speaks the user's language, not Python's.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from typer import core as typer_core
from typer._click import formatting
from typer._click._compat import term_len
from typer._click.core import Context

__all__ = ["HelpContext", "HelpFormatter", "polish", "shell_lines", "split_command"]

_EXAMPLE_PREFIXES = ("Example:", "Examples:")


def _wrap(text: str, width: int, initial: str = "", subsequent: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        width=max(width, 10),
        initial_indent=initial,
        subsequent_indent=subsequent,
        break_long_words=False,
        break_on_hyphens=False,
        replace_whitespace=False,
    ) or [initial.rstrip()]


def split_command(text: str) -> list[str]:
    """Shell words of ``text`` as written (quotes kept): spaces inside quotes do not split."""
    words: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in text:
        if quote is not None:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def shell_lines(command: str, width: int, indent: str, more: str) -> list[str]:
    """``command`` in lines of at most ``width`` (a word longer than that stays whole),
    each but the last ending in `` \\`` so a shell reads them as one command."""
    lines: list[str] = []
    line = indent
    for word in split_command(command):
        candidate = word if line.strip() == "" else f"{line} {word}"
        if line.strip() and len(candidate) + 2 > width:
            lines.append(line + " \\")
            line = more + word
        else:
            line = candidate if line.strip() else indent + word
    lines.append(line)
    return lines


def _paragraphs(text: str) -> list[str]:
    out: list[str] = []
    buffer: list[str] = []
    for line in text.splitlines():
        if line.strip():
            buffer.append(line)
        elif buffer:
            out.append("\n".join(buffer))
            buffer = []
    if buffer:
        out.append("\n".join(buffer))
    return out


class HelpFormatter(formatting.HelpFormatter):
    """Click's formatter, wrapping between words and laying out examples as commands."""

    def _text(self, text: str, indent: str, width: int | None = None) -> list[str]:
        width = self.width if width is None else width
        out: list[str] = []
        for paragraph in _paragraphs(text):
            if out:
                out.append("")
            first = paragraph.lstrip()
            if first.startswith("\b"):  # Click's "do not rewrap" marker
                out += [indent + line for line in paragraph.splitlines()[1:]]
                continue
            prefix = next((p for p in _EXAMPLE_PREFIXES if first.startswith(p)), None)
            if prefix is not None:
                command = " ".join(first[len(prefix) :].split())
                out += self._example(prefix, command, indent, width)
                continue
            # Lines joined as Click does: spacing inside a line (``Pool id.  [required]``)
            # is kept.
            joined = " ".join(line.strip() for line in paragraph.splitlines())
            out += _wrap(joined, width, indent, indent)
        return out

    @staticmethod
    def _example(prefix: str, command: str, indent: str, width: int) -> list[str]:
        one = f"{indent}{prefix} {command}"
        if len(one) <= width:
            return [one]
        return [indent + prefix, *shell_lines(command, width, indent + "  ", indent + "    ")]

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write("\n".join(self._text(text, indent)) + "\n")

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        rows = list(rows)
        widths = formatting.measure_table(rows)
        first_col = min(widths[0], col_max) + col_spacing
        for first, second in formatting.iter_rows(rows, len(widths)):
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if term_len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - term_len(first)))
            else:
                self.write("\n")
                self.write(" " * (first_col + self.current_indent))
            text_width = max(self.width - first_col - 2, 10)
            lines = self._text(second, "", text_width) or [""]
            self.write(f"{lines[0]}\n")
            for line in lines[1:]:
                self.write(f"{'':>{first_col + self.current_indent}}{line}\n")

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        prefix = "Usage: " if prefix is None else prefix
        usage_prefix = f"{prefix:>{self.current_indent}}{prog} "
        lines = _wrap(args, self.width - self.current_indent, usage_prefix, " " * len(usage_prefix))
        self.write("\n".join(lines) + "\n")


class HelpContext(Context):
    formatter_class = HelpFormatter


class _Argument(typer_core.TyperArgument):
    """An argument named in capitals (``ROLLOUT_ID...``), without Python's type names."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _rich_display_name(self) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")

    def get_error_hint(self) -> str:
        return f"'{self._rich_display_name()}'"

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


def _argument_name(param: Any) -> str:
    name = str(param.name or "value").upper()
    if param.nargs != 1 and name.endswith("S") and len(name) > 1:
        name = name[:-1]  # ROLLOUT_IDS... reads ROLLOUT_ID...: one name per value
    return name


def polish(command: Any) -> None:
    """Every command of the tree: capital metavars (``--pool POOL``, ``ROLLOUT_ID...``)
    and this module's help layout."""
    if isinstance(command, typer_core.TyperCommand | typer_core.TyperGroup):
        command.context_class = HelpContext
    for param in getattr(command, "params", []):
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = (param.name or "value").upper()
        elif kind == "argument" and isinstance(param, typer_core.TyperArgument):
            if param.metavar is None:
                param.metavar = _argument_name(param)
            param.__class__ = _Argument  # same fields, help without Python types
    for sub in getattr(command, "commands", {}).values():
        polish(sub)
