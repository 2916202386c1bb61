"""Options shared by many commands, and small parsing helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.runtime import runtime

__all__ = [
    "FieldsOpt",
    "JsonOpt",
    "OutputOpt",
    "QuietOpt",
    "WideOpt",
    "YesOpt",
    "confirm_destructive",
    "output_format",
    "parse_pairs",
    "read_document",
    "read_object",
]

OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output format: table, json, jsonl, yaml or name.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
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


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise UsageProblem(f"{flag} expects KEY=VALUE, got {value!r}")
        pairs[key] = item
    return pairs


def read_document(source: str) -> Any:
    """JSON or YAML from a file, or from stdin with ``-``."""
    if source == "-":
        text = sys.stdin.read()
        where = "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageProblem(f"{source}: no such file")
        text = path.read_text()
        where = source
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
        raise UsageProblem(f"{where} is neither JSON nor YAML: {exc}") from None


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
