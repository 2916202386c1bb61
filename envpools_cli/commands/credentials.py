"""envpools credentials: secrets the backend hands to agents (values never shown)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    YesOpt,
    confirm_destructive,
    output_format,
    parse_pairs,
)
from envpools_cli.commands._secrets import read_secret
from envpools_cli.runtime import runtime

app = typer.Typer(
    help="Credentials stored on the backend: registry logins, provider keys. "
    "Values come from stdin or a hidden prompt, never from arguments.",
    no_args_is_help=True,
)

ValueFileOpt = Annotated[
    Path | None,
    typer.Option("--value-file", help="Read the value from this file instead of stdin/prompt."),
]


def _columns() -> list[Any]:
    from envpools_cli.output.formats import Column

    return [
        Column("ID", "credential_id", kind="id"),
        Column("NAME", "credential_name"),
        Column("TYPE", "credential_type"),
        Column("UPDATED", "updated_at", kind="age"),
    ]


def _show(item: dict[str, Any], fmt: str, fields: str | None) -> None:
    from envpools_cli.output.formats import emit_record, parse_fields

    emit_record(
        item,
        fmt,
        fields=parse_fields(fields),
        id_key="credential_id",
        order=["credential_id", "credential_name", "credential_type"],
    )


@app.command("store")
def store(
    name: Annotated[str, typer.Argument(help="Credential name, e.g. ANTHROPIC_API_KEY.")],
    credential_type: Annotated[
        str,
        typer.Option(
            "--type", help="DOCKER_REGISTRY, GITHUB_PAT, ANTHROPIC_API_KEY, OPENAI_API_KEY, ..."
        ),
    ],
    metadata: Annotated[list[str] | None, typer.Option("--metadata", metavar="KEY=VALUE")] = None,
    value_file: ValueFileOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Store a credential; the value is read from stdin or a hidden prompt.

    Example: printf %s "$ANTHROPIC_API_KEY" | envpools credentials store ANTHROPIC_API_KEY
    --type ANTHROPIC_API_KEY
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet)
    conn = runtime.conn(versioned=False)
    value = read_secret(f"value of {name}", value_file)
    stored = ep.store_credential(
        credential_name=name,
        credential_type=credential_type,
        credential_value=value,
        metadata=parse_pairs(metadata, "--metadata") or None,
        **conn,
    )
    _show(stored, fmt, fields)


@app.command("list")
def list_(
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """List credentials (names and types only).

    Example: envpools credentials list
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import emit, parse_fields

    fmt = output_format(output, as_json, quiet)
    emit(
        ep.list_credentials(**runtime.conn(versioned=False)),
        fmt,
        columns=_columns(),
        fields=parse_fields(fields),
        id_key="credential_id",
        empty="No credentials.",
    )


CredentialArg = Annotated[
    str,
    typer.Argument(
        metavar="CREDENTIAL", help="Credential id or name (as 'envpools credentials list' shows)."
    ),
]


def _resolve(ref: str, conn: dict[str, Any]) -> str:
    """The id of the credential ``ref`` names: its id, else its name (when only one has it)."""
    from envpools_cli import client as ep
    from envpools_cli.cli_errors import EXIT_NOT_FOUND, CLIError, UsageProblem

    found = ep.list_credentials(**conn)
    if any(c.get("credential_id") == ref for c in found):
        return ref
    named = [str(c.get("credential_id")) for c in found if c.get("credential_name") == ref]
    if len(named) == 1:
        return named[0]
    if named:
        raise UsageProblem(
            f"{len(named)} credentials are named {ref!r} ({', '.join(named)}): give the id"
        )
    names = sorted({str(c.get("credential_name")) for c in found if c.get("credential_name")})
    raise CLIError(
        f"no credential with the id or name {ref!r}",
        hint=f"credentials: {', '.join(names)}" if names else "none stored yet",
        exit_code=EXIT_NOT_FOUND,
        code="not_found",
    )


@app.command("rotate")
def rotate(
    credential: CredentialArg,
    value_file: ValueFileOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Replace a credential's value (from stdin or a hidden prompt).

    Example: envpools credentials rotate OPENAI_API_KEY < new-token.txt
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet)
    conn = runtime.conn(versioned=False)
    credential_id = _resolve(credential, conn)  # before the prompt: a typo fails first
    value = read_secret("new value", value_file)
    _show(ep.rotate_credential(credential_id, new_value=value, **conn), fmt, fields)


@app.command("delete")
def delete(credential: CredentialArg, yes: YesOpt = False) -> None:
    """Delete a credential.

    Example: envpools credentials delete OPENAI_API_KEY --yes
    """
    from envpools_cli import client as ep
    from envpools_cli.output.messages import success

    conn = runtime.conn(versioned=False)
    credential_id = _resolve(credential, conn)
    shown = credential_id if credential_id == credential else f"{credential} ({credential_id})"
    confirm_destructive(f"delete credential {shown}", yes)
    ep.delete_credential(credential_id, **conn)
    success(f"deleted credential {shown}")
