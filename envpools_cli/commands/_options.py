"""Options shared by many commands, and small parsing helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.runtime import runtime
from envpools_cli.shared import JSON_FLAG, OUTPUT_OPTION

__all__ = [
    "FieldsOpt",
    "JsonOpt",
    "OutputOpt",
    "QuietOpt",
    "WideOpt",
    "YesOpt",
    "check_choice",
    "check_time",
    "check_writable_file",
    "confirm_destructive",
    "output_format",
    "parse_pairs",
    "read_document",
    "read_object",
    "read_text",
]

OutputOpt = Annotated[
    str | None,
    typer.Option(
        *OUTPUT_OPTION,
        help="Output format: table, json, jsonl, yaml or name.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option(JSON_FLAG, help="Same as -o json.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only ids, one per line.")]
FieldsOpt = Annotated[
    str | None,
    typer.Option(
        "--fields",
        help="Comma-separated keys (JSON) or columns (table) to show.",
        show_default=False,
    ),
]
WideOpt = Annotated[
    bool, typer.Option("--wide", "-w", help="More columns in the table (ids stay whole).")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def output_format(
    output: str | None,
    as_json: bool,
    quiet: bool,
    *,
    fields: str | None = None,
    wide: bool = False,
) -> str:
    """The output format, with the output flags checked against each other (before any request)."""
    from envpools_cli.output.formats import resolve_format

    fmt = resolve_format(
        output,
        as_json,
        quiet,
        runtime.resolved().output if not (output or as_json or quiet) else None,
    )
    if fmt in ("json", "jsonl", "yaml"):
        runtime.json_errors = True
    if fields is not None and fmt == "name":
        raise UsageProblem("--fields has nothing to choose from when only ids are printed (-q)")
    if wide and fmt != "table":
        raise UsageProblem(f"--wide adds table columns; -o {fmt} prints every field already")
    if wide and fields is not None:
        raise UsageProblem("--fields chooses the columns; drop --wide")
    return fmt


def check_choice(value: str | None, flag: str, choices: Iterable[str]) -> None:
    """Refuse a value outside a known set before any request, naming the set."""
    allowed = list(choices)
    if value is not None and value not in allowed:
        raise UsageProblem(f"{flag} {value!r} is not one of {', '.join(allowed)}")


def check_time(value: str | None, flag: str) -> None:
    """Refuse a timestamp that is not RFC 3339 (2026-01-31T12:00:00Z) before any request."""
    if value is None:
        return
    from datetime import datetime

    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageProblem(
            f"{flag} {value!r} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)"
        ) from None


def check_writable_file(target: Path | None, flag: str) -> None:
    """A report written at the end must be writable from the start: fail before waiting."""
    if target is None or str(target) == "-":
        return
    if target.is_dir():
        raise UsageProblem(f"{flag} {target} is a directory; give a file name")
    for folder in target.parents:  # missing folders are created; a file in the way is not
        if folder.exists():
            if not folder.is_dir():
                raise UsageProblem(f"{flag} {target}: {folder} is a file, not a folder")
            break


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise UsageProblem(f"{flag} expects KEY=VALUE, got {value!r}")
        pairs[key] = item
    return pairs


def read_text(source: str | Path, *, stdin_ok: bool = True) -> tuple[str, str]:
    """(text, where from) of a file, or of stdin for ``-``; anything but UTF-8 text is refused."""
    if stdin_ok and str(source) == "-":
        where = "stdin"
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise UsageProblem(f"stdin is not UTF-8 text (byte {exc.start} is not)") from None
    else:
        where = str(source)
        path = Path(source)
        if path.is_dir():
            raise UsageProblem(f"{where} is a directory; give a file")
        if not path.exists():
            raise UsageProblem(f"{where}: no such file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageProblem(f"{where}: cannot read it ({exc.strerror or exc})") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UsageProblem(
                f"{where} is not UTF-8 text (byte {exc.start} is not; a binary file?)"
            ) from None
    if "\x00" in text:
        raise UsageProblem(f"{where} holds NUL bytes: a binary file, not text")
    return text, where


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's multi-line report as one line: what, and where."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def read_document(source: str) -> Any:
    """JSON or YAML from a file, or from stdin with ``-``."""
    text, where = read_text(source)
    if not text.strip():
        raise UsageProblem(f"{where} is empty")
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageProblem(f"{where} is neither JSON nor YAML: {_yaml_problem(exc)}") from None


def read_object(source: str | None, flag: str, what: str) -> dict[str, Any]:
    """One JSON/YAML object from ``source`` (a file, or - for stdin); {} without one."""
    if not source:
        return {}
    document = read_document(source)
    if not isinstance(document, dict):
        raise UsageProblem(f"{flag} must hold one {what} object")
    return document


def confirm_destructive(what: str, yes: bool) -> None:
    """Ask before deleting; refuse to guess when nobody can answer."""
    if yes:
        return
    if not runtime.interactive:
        raise UsageProblem(f"refusing to {what} without --yes (not interactive)")
    if not typer.confirm(f"{what[0].upper()}{what[1:]}?", default=False, err=True):
        raise typer.Exit(1)
