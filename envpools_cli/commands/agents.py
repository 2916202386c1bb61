"""envpools agents: install the agent CLIs the local backend runs (codex, claude-code, opencode).

This works on the local backend's data dir directly, like ``envpools local``: the hosted
service manages its own agents.
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
    help="Agent CLIs for the local backend: install them with npm, list them.",
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


def _rows(agents_dir: Path) -> list[dict[str, Any]]:
    from envpools_cli.server.agents.installs import AGENT_PACKAGES, installed_agents

    found = installed_agents(agents_dir)
    rows = []
    for harness, package in AGENT_PACKAGES.items():
        install = found.get(harness)
        rows.append(
            {
                "agent": harness,
                "binary": package.binary,
                "package": package.package,
                "installed": install.version if install else None,
                "default_version": package.version,
                "path": str(install.root) if install else None,
                "installed_at": install.installed_at if install else None,
            }
        )
    return rows


def _columns() -> list[Any]:
    from envpools_cli.output.formats import Column

    return [
        Column("AGENT", "agent", kind="id"),
        Column("INSTALLED", "installed", render=lambda v: v or "-"),
        Column("DEFAULT", "default_version"),
        Column("PACKAGE", "package"),
        Column("PATH", "path", render=lambda v: v or "-"),
    ]


@app.command("install")
def install(
    agents: Annotated[
        list[str] | None,
        typer.Argument(help="codex, claude-code (or claude), opencode; none: all three."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="An npm version of the package (default: the pinned one)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Reinstall even if present.")] = False,
    data_dir: DataDirOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Install agent CLIs with npm into the local backend's data dir (needs Node.js and npm).

    The sandbox gets each as a read-only tool tree; a running backend uses it at once.

    Example: envpools agents install codex claude-code opencode
    """
    from envpools_cli.output.formats import emit, parse_fields
    from envpools_cli.output.messages import info, success
    from envpools_cli.server.agents.installs import (
        AGENT_PACKAGES,
        AgentInstallError,
        canonical_agent,
        install_agent,
        is_version,
    )

    fmt = output_format(output, as_json, quiet)
    names = [canonical_agent(a) for a in agents or list(AGENT_PACKAGES)]
    unknown = [n for n in names if n not in AGENT_PACKAGES]
    if unknown:
        raise UsageProblem(
            f"unknown agent {unknown[0]!r}; installable agents: {sorted(AGENT_PACKAGES)}"
        )
    if version and len(names) != 1:
        raise UsageProblem("--version applies to one agent at a time")
    if version is not None and not is_version(version):
        example = AGENT_PACKAGES[names[0]].version
        raise UsageProblem(f"--version {version!r} is not a version (for example {example})")
    target = _agents_dir(data_dir)
    for name in dict.fromkeys(names):

        def progress(message: str, agent: str = name) -> None:
            info(f"{agent}: {message}")

        try:
            done, changed = install_agent(target, name, version, force=force, progress=progress)
        except AgentInstallError as exc:
            raise CLIError(str(exc), code="agent_install_failed") from None
        if changed:
            success(f"installed {done.package}@{done.version} in {done.root}")
        else:
            info(f"{done.package}@{done.version} is already installed (--force reinstalls it)")
    rows = [r for r in _rows(target) if r["agent"] in names]
    emit(rows, fmt, columns=_columns(), fields=parse_fields(fields), id_key="agent")


@app.command("list")
def list_(
    data_dir: DataDirOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """The agents the local backend can install, and which version of each is installed.

    Whether an installed agent actually runs in the sandbox: envpools capabilities get.

    Example: envpools agents list -o json | jq '.[] | select(.installed)'
    """
    from envpools_cli.output.formats import emit, parse_fields

    fmt = output_format(output, as_json, quiet)
    rows = _rows(_agents_dir(data_dir))
    emit(rows, fmt, columns=_columns(), fields=parse_fields(fields), id_key="agent")


@app.command("remove")
def remove(
    agent: Annotated[str, typer.Argument(help="codex, claude-code or opencode.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove an installed agent CLI.

    Example: envpools agents remove opencode
    """
    from envpools_cli.output.messages import info, success
    from envpools_cli.server.agents.installs import AGENT_PACKAGES, canonical_agent, remove_agent

    if canonical_agent(agent) not in AGENT_PACKAGES:
        raise UsageProblem(f"unknown agent {agent!r}; agents: {sorted(AGENT_PACKAGES)}")
    removed = remove_agent(_agents_dir(data_dir), agent)
    if removed is None:
        info(f"{agent} is not installed")
    else:
        success(f"removed {removed.package}@{removed.version}")
