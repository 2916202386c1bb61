"""Commentary on stderr: info, warnings, errors, hints. Never data."""

from __future__ import annotations

import json
import sys
from typing import Any

from envpools_cli.output.streams import color_enabled

__all__ = ["error", "error_json", "hint", "info", "success", "warn"]

_quiet = False
_STYLES = {"error": "\x1b[1;31m", "warn": "\x1b[33m", "ok": "\x1b[32m", "hint": "\x1b[2m"}
_warned: set[str] = set()


def set_quiet(value: bool) -> None:
    global _quiet
    _quiet = value


def _fitted(text: str) -> str:
    """On a terminal, long lines wrap between words (the terminal would cut words in two);
    piped, a message stays one line for tools to match."""
    try:
        if not sys.stderr.isatty():
            return text
        import os

        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return text
    if width < 20 or all(len(line) <= width for line in text.splitlines()):
        return text
    from envpools_cli.output.describe import wrap

    return "\n".join(wrap(text, width))


def _emit(text: str, style: str | None = None) -> None:
    text = _fitted(text)
    if style and color_enabled(sys.stderr):
        text = "\n".join(f"{_STYLES[style]}{line}\x1b[0m" for line in text.splitlines())
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def info(text: str) -> None:
    if not _quiet:
        _emit(text)


def success(text: str) -> None:
    if not _quiet:
        _emit(text, "ok")


def warn(text: str, *, once: bool = False) -> None:
    if once:
        if text in _warned:
            return
        _warned.add(text)
    _emit(f"warning: {text}", "warn")


def error(text: str) -> None:
    _emit(f"error: {text}", "error")


def hint(text: str) -> None:
    _emit(text, "hint")


def error_json(payload: dict[str, Any]) -> None:
    _emit(json.dumps({"error": payload}, ensure_ascii=False))
