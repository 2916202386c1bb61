"""envpools capabilities: what the backend offers."""

from __future__ import annotations

from typing import Any

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._options import FieldsOpt, JsonOpt, OutputOpt, output_format
from envpools_cli.runtime import runtime

app = typer.Typer(
    help="What the backend supports: agents, models, pool types, schemas.", no_args_is_help=True
)


@app.command("get")
def get(output: OutputOpt = None, as_json: JsonOpt = False, fields: FieldsOpt = None) -> None:
    """Agents (and why any is unavailable), models, pool types, features.

    Example: envpools capabilities get -o json | jq '.agents[] | select(.available)'
    """
    from envpools_cli import __version__
    from envpools_cli import client as ep
    from envpools_cli.cli_errors import EXIT_CODES
    from envpools_cli.output.formats import emit_record, parse_fields

    fmt = output_format(output, as_json, False, fields=fields)
    if fmt == "name":
        raise UsageProblem("capabilities have no id to print; use -o json, yaml or table")
    caps = ep.get_capabilities(**runtime.conn())
    # What scripts and agents need to know about this CLI, beside what the backend offers.
    caps["cli"] = {
        "version": __version__,
        "exit_codes": {str(code): meaning for code, meaning in EXIT_CODES.items()},
        "output_formats": ["table", "json", "jsonl", "yaml", "name"],
    }
    if fmt != "table" or fields:
        emit_record(caps, fmt, fields=parse_fields(fields))
        return
    from envpools_cli.output.capabilities import capability_sections
    from envpools_cli.output.describe import print_sections

    print_sections(capability_sections(caps))


def _document(name: str, fetch: Any, output: str | None, as_json: bool) -> None:
    from envpools_cli.output.formats import emit_record

    fmt = output_format(output or "json", as_json, False)
    emit_record(fetch(**runtime.conn()), "json" if fmt == "table" else fmt)


@app.command("openapi")
def openapi(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """The backend's OpenAPI document (JSON by default).

    Example: envpools capabilities openapi | jq '.paths | keys'
    """
    from envpools_cli import client as ep

    _document("openapi", ep.get_openapi_schema, output, as_json)


@app.command("schema")
def schema(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """JSON Schemas of the request and response models.

    Example: envpools capabilities schema -o yaml
    """
    from envpools_cli import client as ep

    _document("schema", ep.get_schema_json, output, as_json)
