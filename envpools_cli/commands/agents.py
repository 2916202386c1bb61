"""envpools agents: the coding agents the local backend runs, built-in and your own.

``install`` installs the built-in agents' CLIs (npm, or a Python environment of their
own), ``add`` registers an agent of your own from its manifest (``agent.toml``) or a
Python package, ``list`` shows them all and whether each runs here, ``remove`` removes.

This works on the local backend's data dir directly, like ``envpools local``: the hosted
service manages its own agents. ``check`` asks the running local backend to try each
agent's provider with the stored key and base URL (``server/agents/probe.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import CLIError, UsageProblem
from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    output_format,
)

app = typer.Typer(
    help="Coding agents for the local backend: install the built-ins, add your own, list "
    "them, check their keys.",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The local backend's data dir (default: the running backend's, else the "
        "usual one). ENVPOOLS_AGENTS_DIR overrides where agents go.",
    ),
]


def _agents_dir(data_dir: Path | None) -> Path:
    from envpools_cli import paths
    from envpools_cli.server.settings import agents_dir_for

    if data_dir is None:
        # The running backend's data dir, when one is recorded.
        try:
            state = json.loads((paths.state_dir() / "local-backend.json").read_text())
            data_dir = Path(state["data_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            data_dir = paths.data_dir() / "local"
    return agents_dir_for(data_dir)


def _rows(agents_dir: Path, *, check: bool) -> list[dict[str, Any]]:
    from envpools_cli.server.agents.listing import agent_rows, local_tools

    return agent_rows(agents_dir, local_tools(agents_dir) if check else None)


def _providers(row: dict[str, Any]) -> str:
    shown = ", ".join(row.get("providers") or []) or "-"
    return shown + " (or the model's)" if row.get("provider_from_model") else shown


def _runs(row: dict[str, Any]) -> str:
    if row.get("available") is None:
        return "-"
    return "yes" if row["available"] else f"no: {row.get('reason') or 'unknown'}"


def _columns(*, check: bool) -> list[Any]:
    from envpools_cli.output.formats import Column

    columns = [
        Column("AGENT", "agent", kind="id"),
        Column("KIND", "kind", kind="fixed"),
        Column("INSTALLED", "installed", render=lambda v: v or "-", kind="fixed"),
        Column("DEFAULT", "default_version", render=lambda v: v or "-", kind="fixed", wide=True),
        Column("PROVIDERS", "providers"),
        Column("MODELS", "models"),
        Column("PATH", "path", render=lambda v: v or "-", wide=True),
    ]
    if check:
        columns.append(Column("RUNS HERE", "available", ratio=2))
    return columns


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose table cells read well: providers and availability as sentences."""
    return [
        {
            **row,
            "providers": _providers(row),
            "models": _models(row),
            "available": _runs(row),
        }
        for row in rows
    ]


def _models(row: dict[str, Any]) -> str:
    shown = ", ".join(row.get("models") or [])
    if row.get("accepts_any_model"):
        return f"{shown} (or any)" if shown else "any"
    return shown or "-"


def _emit(rows: list[dict[str, Any]], fmt: str, fields: str | None, *, check: bool) -> None:
    from envpools_cli.output.formats import emit, parse_fields

    if fmt == "table":
        rows = _table_rows(rows)
    emit(rows, fmt, columns=_columns(check=check), fields=parse_fields(fields), id_key="agent")


@app.command("install")
def install(
    agents: Annotated[
        list[str] | None,
        typer.Argument(
            help="codex, claude-code (or claude), opencode, gemini-cli, qwen-code, "
            "mini-swe-agent; none: all of them."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="A version of the package (default: the pinned one)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Reinstall even if present.")] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Install the built-in agents' CLIs into the local backend's data dir.

    The Node.js agents need npm; mini-swe-agent gets a Python environment of its own made
    with /usr/bin/python3 (python3-venv). The sandbox gets each as a read-only tool tree;
    a running backend uses it at once.

    Example: envpools agents install codex gemini-cli mini-swe-agent
    """
    from envpools_cli.output.messages import info, success
    from envpools_cli.server.agents.installs import (
        AGENT_PACKAGES,
        AgentInstallError,
        canonical_agent,
        install_agents,
        is_version,
    )

    fmt = output_format(output, as_json, quiet)
    names = [canonical_agent(a) for a in agents or list(AGENT_PACKAGES)]
    unknown = [n for n in names if n not in AGENT_PACKAGES]
    if unknown:
        raise UsageProblem(
            f"unknown agent {unknown[0]!r}; installable agents: {sorted(AGENT_PACKAGES)} "
            "(an agent of your own: envpools agents add PATH)"
        )
    if version and len(names) != 1:
        raise UsageProblem("--version applies to one agent at a time")
    if version is not None and not is_version(version):
        example = AGENT_PACKAGES[names[0]].version
        raise UsageProblem(f"--version {version!r} is not a version (for example {example})")
    target = _agents_dir(data_dir)

    def progress(agent: str, message: str) -> None:
        info(f"{agent}: {message}")

    results = install_agents(target, names, version, force=force, progress=progress)
    failed = []
    for name, result in results.items():
        if isinstance(result, AgentInstallError):
            failed.append(f"{name}: {result}")
            continue
        done, changed = result
        spec = AGENT_PACKAGES[name].spec(done.version)
        if changed:
            success(f"installed {spec} in {done.root}")
        else:
            info(f"{spec} is already installed (--force reinstalls it)")
    if failed:
        raise CLIError("\n".join(failed), code="agent_install_failed")
    rows = [r for r in _rows(target, check=False) if r["agent"] in names]
    _emit(rows, fmt, fields, check=False)


@app.command("add")
def add(
    source: Annotated[
        str,
        typer.Argument(
            metavar="PATH|PACKAGE",
            help="A folder holding agent.toml (or the file), or a Python package for pip "
            "(name==version, a wheel, a project folder) that declares an envpools.agents "
            "entry point.",
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a custom agent of the same name.")
    ] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Add an agent of your own, declared by a manifest (agent.toml, manifest_version = 1).

    The manifest is checked first: a missing command, an unknown parser or a provider the
    gateway would not route is refused here with the reason, not at the first rollout.
    The agent then appears in capabilities, --agent NAME and jobs. README, "Coding agents",
    documents the manifest.

    Example: envpools agents add ./my-agent
    """
    from envpools_cli.output.messages import info, success
    from envpools_cli.server.agents import RESERVED_NAMES
    from envpools_cli.server.agents.custom import AgentAddError, add_agent

    fmt = output_format(output, as_json, quiet)
    if not source.strip():
        raise UsageProblem("give a folder holding agent.toml, or a Python package")
    target = _agents_dir(data_dir)

    def progress(message: str) -> None:
        info(message)

    try:
        agent = add_agent(target, source, builtin=RESERVED_NAMES, force=force, progress=progress)
    except AgentAddError as exc:
        if exc.invalid:
            raise CLIError(
                f"{source} was not added: {exc}", code="invalid_agent", exit_code=2
            ) from None
        raise CLIError(f"{source} was not added: {exc}", code="agent_install_failed") from None
    success(f"added {agent.manifest.name} (custom agent) in {agent.root}")
    rows = [r for r in _rows(target, check=False) if r["agent"] == agent.manifest.name]
    _emit(rows, fmt, fields, check=False)


@app.command("list")
def list_(
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Start each agent's CLI in a sandbox to tell whether it runs here.",
        ),
    ] = True,
    data_dir: DataDirOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Every agent: built-in or custom, installed version, providers, models, whether it runs here.

    Example: envpools agents list -o json | jq '.[] | select(.available | not)'
    """
    fmt = output_format(output, as_json, quiet)
    rows = _rows(_agents_dir(data_dir), check=check)
    _emit(rows, fmt, fields, check=check)


@app.command("remove")
def remove(
    agent: Annotated[str, typer.Argument(help="A built-in agent's CLI, or a custom agent.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove an installed agent CLI, or a custom agent.

    Example: envpools agents remove opencode
    """
    from envpools_cli.output.messages import info, success
    from envpools_cli.server.agents.custom import remove_custom_agent
    from envpools_cli.server.agents.installs import AGENT_PACKAGES, canonical_agent, remove_agent

    target = _agents_dir(data_dir)
    name = canonical_agent(agent)
    if name not in AGENT_PACKAGES:
        if remove_custom_agent(target, name):
            success(f"removed the custom agent {name}")
            return
        raise UsageProblem(
            f"unknown agent {agent!r}; built-in agents: {sorted(AGENT_PACKAGES)}, or a "
            "custom agent's name (envpools agents list)"
        )
    removed = remove_agent(target, agent)
    if removed is None:
        info(f"{agent} is not installed")
    else:
        success(f"removed {AGENT_PACKAGES[name].spec(removed.version)}")


@app.command("check")
def check(
    agent: Annotated[
        str | None,
        typer.Argument(help="One agent (claude-code, codex, ...); none: every agent."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="The model to try (default: each agent's preset)."),
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Try each agent's provider with one real model call through the stored key and base URL.

    The backend sends one minimal request per agent (its provider's API, its model,
    the organisation's key and base URL, as a rollout would), all at once, and gives a
    verdict per agent in seconds: ok, or the provider_* code of a rollout that would fail
    (provider_auth, provider_unreachable, ...) with the provider's message. Exit 5 when
    any fails (7 when all that fail are transient: 429, 5xx, no answer).

    Example: envpools agents check claude-code
    """
    from envpools_cli import client as ep
    from envpools_cli.cli_errors import EXIT_NOT_FOUND, EXIT_NOT_SUCCEEDED, EXIT_TRANSIENT
    from envpools_cli.error_codes import lookup
    from envpools_cli.output.formats import Column, emit, parse_fields
    from envpools_cli.runtime import runtime

    fmt = output_format(output, as_json, quiet)
    try:
        rows = ep.check_agents(agent, model_id=model, **runtime.conn(versioned=False))
    except ep.NotFoundError as exc:
        if "no agent" in str(exc):  # the backend knows no such agent: its message says so
            raise
        raise CLIError(
            "this backend has no agents check: it is the local backend's "
            "(envpools local up, then envpools agents check)",
            exit_code=EXIT_NOT_FOUND,
            code="not_found",
        ) from None
    columns = [
        Column("AGENT", "agent", kind="id"),
        Column("VERDICT", "verdict", kind="fixed"),
        Column("PROVIDER", "provider", render=lambda v: v or "-", kind="fixed"),
        Column("MODEL", "model", render=lambda v: v or "-", kind="fixed"),
        Column("SECONDS", "seconds", kind="fixed"),
        Column("MESSAGE", "message", ratio=3),
        Column("ENDPOINT", "endpoint", render=lambda v: v or "-", wide=True),
    ]
    emit(rows, fmt, columns=columns, fields=parse_fields(fields), id_key="agent")
    failed = [r for r in rows if r.get("verdict") not in ("ok", "not_checked")]
    if failed:
        transient = all((e := lookup(r.get("verdict"))) and e.transient for r in failed)
        raise typer.Exit(EXIT_TRANSIENT if transient else EXIT_NOT_SUCCEEDED)
