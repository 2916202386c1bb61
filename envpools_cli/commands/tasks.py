"""envpools tasks (also envpools pools tasks, composed in app.py): a pool's task definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._harbor import local_task_body
from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    YesOpt,
    confirm_destructive,
    output_format,
    parse_pairs,
    read_object,
)
from envpools_cli.runtime import runtime

app = typer.Typer(help="Task definitions of a pool.", no_args_is_help=True)

DockerOpt = Annotated[
    str | None, typer.Option("--docker", metavar="IMAGE", help="A Harbor task in a Docker image.")
]
OpenEnvOpt = Annotated[
    str | None, typer.Option("--openenv", metavar="URL", help="An OpenEnv server URL.")
]
BrowserOpt = Annotated[
    str | None, typer.Option("--browser", metavar="URL", help="A browser task app URL.")
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="Browser profile.")]
LocalOpt = Annotated[
    Path | None,
    typer.Option(
        "--local", metavar="PATH", help="A Harbor task directory on the backend's machine."
    ),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", metavar="KEY=VALUE", help="Environment variable (repeatable)."),
]
CpusOpt = Annotated[int | None, typer.Option("--cpus", min=1)]
MemoryOpt = Annotated[int | None, typer.Option("--memory-mb", min=1)]
FromFileOpt = Annotated[
    str | None,
    typer.Option("--from-file", "-f", help="Task as JSON or YAML (file, or - for stdin)."),
]


def _source(task: dict[str, Any]) -> str:
    source = task.get("data_source") or {}
    if source.get("path"):
        return str(source["path"])
    if task.get("docker_image"):
        return f"docker:{task['docker_image']}"
    for key in ("openenv_deployment", "browser"):
        value = task.get(key) or {}
        url = value.get("task_app_url") or value.get("container_url")
        if url:
            return str(url)
    return "-"


def _body(
    task_id: str | None,
    docker: str | None,
    openenv: str | None,
    browser: str | None,
    profile: str | None,
    local: Path | None,
    env: list[str] | None,
    cpus: int | None,
    memory_mb: int | None,
    from_file: str | None,
) -> dict[str, Any]:
    from envpools_cli.client import PoolTask

    chosen = [
        name
        for name, value in (
            ("--docker", docker),
            ("--openenv", openenv),
            ("--browser", browser),
            ("--local", local),
            ("--from-file", from_file),
        )
        if value
    ]
    if len(chosen) > 1:
        raise UsageProblem(f"choose one task source, not {' and '.join(chosen)}")
    env_vars = parse_pairs(env, "--env") or None
    resources = {k: v for k, v in (("cpus", cpus), ("memory_mb", memory_mb)) if v} or None
    if from_file:
        body = read_object(from_file, "--from-file", "task")
        if task_id:
            body["task_id"] = task_id
    elif local:
        body = local_task_body(local, task_id)
    else:
        if not task_id:
            raise UsageProblem("give a TASK_ID")
        if docker:
            body = PoolTask.from_docker(task_id, docker).model_dump()
        elif openenv:
            body = PoolTask.from_openenv(task_id, openenv).model_dump()
        elif browser:
            body = PoolTask.from_browser(task_id, browser, profile=profile).model_dump()
        else:
            raise UsageProblem(
                "give a task source: --docker, --openenv, --browser, --local or --from-file"
            )
    if env_vars:
        body["env_vars"] = {**(body.get("env_vars") or {}), **env_vars}
    if resources:
        body["resources"] = {**(body.get("resources") or {}), **resources}
    if "task_id" not in body:
        raise UsageProblem("the task needs a task_id")
    return body


def _show(task: dict[str, Any], fmt: str, fields: str | None) -> None:
    from envpools_cli.output.formats import emit_record, parse_fields

    emit_record(
        task,
        fmt,
        fields=parse_fields(fields),
        id_key="task_id",
        order=["task_id", "backend", "data_source", "docker_image"],
    )


@app.command("list")
def list_tasks(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """List a pool's tasks.

    Example: envpools tasks list local-coding
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import Column, emit, parse_fields

    fmt = output_format(output, as_json, quiet, fields=fields)
    items = ep.list_pool_tasks(pool_id, **runtime.conn())
    columns = [
        Column("TASK", "task_id", kind="id"),
        Column("BACKEND", "backend"),
        Column("SOURCE", "source"),
    ]
    rows = [{**t, "source": _source(t)} for t in items]
    emit(
        rows if fmt == "table" else items,
        fmt,
        columns=columns,
        fields=parse_fields(fields),
        id_key="task_id",
        empty=f"Pool {pool_id} has no tasks.",
    )


@app.command("create")
def create_task(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    task_id: Annotated[
        str | None,
        typer.Argument(
            help="Task id (for --local, defaults to the directory name).", show_default=False
        ),
    ] = None,
    docker: DockerOpt = None,
    openenv: OpenEnvOpt = None,
    browser: BrowserOpt = None,
    profile: ProfileOpt = None,
    local: LocalOpt = None,
    env: EnvOpt = None,
    cpus: CpusOpt = None,
    memory_mb: MemoryOpt = None,
    from_file: FromFileOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Add a task to a pool.

    Example: envpools tasks create local-coding --local ./tasks/fix-failing-test
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    body = _body(task_id, docker, openenv, browser, profile, local, env, cpus, memory_mb, from_file)
    _show(ep.create_pool_task(pool_id, request=body, **runtime.conn()), fmt, fields)


@app.command("update")
def update_task(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    docker: DockerOpt = None,
    openenv: OpenEnvOpt = None,
    browser: BrowserOpt = None,
    profile: ProfileOpt = None,
    local: LocalOpt = None,
    env: EnvOpt = None,
    cpus: CpusOpt = None,
    memory_mb: MemoryOpt = None,
    from_file: FromFileOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Replace a task's definition (what the new one leaves out, such as --env, is gone).

    Example: envpools tasks update web-pool login --docker ghcr.io/acme/login:2
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    body = _body(task_id, docker, openenv, browser, profile, local, env, cpus, memory_mb, from_file)
    body["task_id"] = task_id
    _show(ep.update_pool_task(pool_id, task_id, request=body, **runtime.conn()), fmt, fields)


@app.command("delete")
def delete_task(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    yes: YesOpt = False,
) -> None:
    """Remove a task from a pool.

    Example: envpools tasks delete local-coding old-task --yes
    """
    from envpools_cli import client as ep
    from envpools_cli.output.messages import success

    confirm_destructive(f"delete task {task_id!r} of pool {pool_id!r}", yes)
    ep.delete_pool_task(pool_id, task_id, **runtime.conn())
    success(f"deleted task {task_id} from pool {pool_id}")


FolderArg = Annotated[Path, typer.Argument(metavar="DIR", help="The task's folder.")]


@app.command("init")
def init_task(folder: FolderArg) -> None:
    """Make a new Harbor task folder to edit: instruction, task.toml, environment, solution,
    tests. As made it passes 'envpools tasks check'.

    Example: envpools tasks init ./my-task && envpools tasks check ./my-task
    """
    from envpools_cli.output.messages import info, success
    from envpools_cli.task_folder import scaffold

    try:
        written = scaffold(folder)
    except FileExistsError as exc:
        raise UsageProblem(str(exc), hint="give a new folder") from None
    success(f"made the task {folder.name} in {folder}")
    for path in written:
        info(f"  {path.relative_to(folder)}")
    info(
        f"edit instruction.md, the environment, solution/solve.sh and tests/test.sh; then "
        f"check it: envpools tasks check {folder}"
    )


@app.command("check")
def check_task(
    folder: FolderArg,
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox",
            help="auto, container, bwrap or process (env ENVPOOLS_SANDBOX; default auto).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SEC", min=1, help="Seconds per rollout.")
    ] = 900.0,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the task's oracle (it must pass) and nop (it must not), as 'harbor tasks check'.

    Runs on a backend of its own on this machine (no 'local up' needed); exit 0 when the
    task is sound, 5 when not (what went wrong, and the verifier's last lines, are said).

    Example: envpools tasks check ./my-task --sandbox bwrap
    """
    from envpools_cli.cli_errors import EXIT_NOT_SUCCEEDED
    from envpools_cli.local_backend import sandbox_choice
    from envpools_cli.output.messages import info
    from envpools_cli.output.tasks import show_check
    from envpools_cli.server.tasks import TaskError
    from envpools_cli.task_folder import check

    fmt = output_format(output, as_json, False)
    chosen = sandbox_choice(sandbox)
    if not folder.is_dir():
        raise UsageProblem(f"{folder}: not a directory")
    try:
        verdicts = check(folder, sandbox=chosen, timeout=timeout, say=info)
    except TaskError as exc:
        raise UsageProblem(f"{folder}: {exc.message}") from None
    except ValueError as exc:  # a setting in the environment that does not parse
        raise UsageProblem(str(exc)) from None
    show_check(folder, verdicts, fmt)
    if not all(v.ok for v in verdicts):
        raise typer.Exit(EXIT_NOT_SUCCEEDED)
