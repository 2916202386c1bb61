"""Terminal detection, colour policy and writes that survive a closed pipe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = [
    "PipeClosed",
    "color_enabled",
    "dump_json",
    "is_tty",
    "json_text",
    "write_bytes_out",
    "write_out",
]

_color_choice = "auto"


class PipeClosed(Exception):
    """stdout's reader went away (``| head -1``): stop quietly."""


def set_color(choice: str) -> None:
    global _color_choice
    _color_choice = choice


def is_tty(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def dump_json(value: Any, *, pretty: bool | None = None) -> str:
    """JSON as every command prints it: indented for a person, one line for a pipe."""
    pretty = is_tty() if pretty is None else pretty
    return json_text(value, indent=2 if pretty else None)


def color_enabled(stream: TextIO | None = None) -> bool:
    """``--color``, then NO_COLOR / CLICOLOR / FORCE_COLOR / TERM=dumb, then the terminal."""
    if _color_choice == "always":
        return True
    if _color_choice == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR") or os.environ.get("CLICOLOR_FORCE", "0") not in ("", "0"):
        return True
    if os.environ.get("CLICOLOR") == "0" or os.environ.get("TERM") == "dumb":
        return False
    return is_tty(stream)


def _silence_stdout() -> None:
    # Per the Python docs on SIGPIPE: point stdout at devnull so the interpreter's
    # final flush does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def json_text(value: object, indent: int | None = None) -> str:
    """JSON as it is printed: UTF-8 text, or ``\\u`` escapes when a string holds a lone
    surrogate (which no UTF-8 stdout can write)."""
    import json  # here: not every path that imports this module prints JSON

    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, indent=indent, ensure_ascii=True, default=str)
    return text


def write_out(text: str) -> None:
    """Write data to stdout; a closed pipe raises PipeClosed (exit 0 at the boundary)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise PipeClosed() from None


def write_bytes_out(chunks: Iterable[bytes]) -> None:
    """Write binary data (a zip) to stdout as it comes; a closed pipe raises PipeClosed."""
    try:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise PipeClosed() from None
