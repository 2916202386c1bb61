"""envpools pools: list, inspect, create, change and delete pools."""

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
    WideOpt,
    YesOpt,
    confirm_destructive,
    output_format,
    read_object,
)
from envpools_cli.runtime import runtime

app = typer.Typer(
    help="Pools: where rollouts run, with their tasks and limits.", no_args_is_help=True
)

TypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type", help="Pool type (sandbox, browser, openenv, archipelago).", show_default=False
    ),
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        help="HARBOR_CODING, HARBOR_BROWSER, ARCHIPELAGO or OPENENV.",
        show_default=False,
    ),
]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", help="Backend provider.", show_default=False)
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=0, help="Rollouts running at once.")
]
CapacityOpt = Annotated[int | None, typer.Option("--capacity", min=0, help="Pool capacity.")]
MaxQueueOpt = Annotated[
    int | None,
    typer.Option("--max-queue", min=0, help="Queued rollouts before creates get 429 queue_full."),
]
MaxRunningOpt = Annotated[int | None, typer.Option("--max-running", min=0)]
PriorityOpt = Annotated[int | None, typer.Option("--priority-weight")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")]
AgentOpt = Annotated[
    list[str] | None,
    typer.Option("--allowed-agent", help="Harness allowed in this pool (repeatable)."),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option("--allowed-model", help="Model allowed in this pool (repeatable)."),
]
SpendOpt = Annotated[float | None, typer.Option("--spend-limit", min=0, help="Spend limit in USD.")]
FromFileOpt = Annotated[
    str | None,
    typer.Option(
        "--from-file",
        "-f",
        help="Pool as JSON or YAML (file, or - for stdin); flags override it.",
        show_default=False,
    ),
]
LocalOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--local", help="Add a Harbor task directory on this machine (repeatable; id = its name)."
    ),
]

COLUMNS_SPEC = [
    ("POOL", "pool_id"),
    ("TYPE", "pool_type"),
    ("BACKEND", "backend"),
    ("CONCURRENCY", "concurrency"),
    ("TAGS", "tags"),
    ("TASKS", "tasks"),
    ("CREATED", "created_at"),
]


def _columns() -> list[Any]:
    from envpools_cli.output.formats import Column

    def count(value: Any) -> str:
        return str(len(value)) if isinstance(value, list) else "-"

    def joined(value: Any) -> str:
        return ",".join(value) if isinstance(value, list) and value else "-"

    return [
        Column("POOL", "pool_id", kind="id"),
        Column("TYPE", "pool_type", kind="fixed"),
        Column("BACKEND", "backend"),
        Column("CONCURRENCY", "concurrency", kind="fixed"),
        Column("TAGS", "tags", render=joined),
        Column("TASKS", "tasks", render=count, kind="fixed"),
        Column("STATUS", "status", kind="fixed", wide=True),
        Column("CAPACITY", "capacity", kind="fixed", wide=True),
        Column("MAX QUEUE", "max_queue", kind="fixed", wide=True),
        Column("AGENTS", "allowed_agents", render=joined, wide=True),
        Column("AGE", "created_at", kind="age"),
    ]


# option name -> wire name of the pool settings both create and update take
_SETTINGS = {
    "pool_type": "pool_type",
    "template": "template",
    "backend": "backend",
    "concurrency": "concurrency",
    "capacity": "capacity",
    "max_queue": "max_queue",
    "max_running": "max_running",
    "priority_weight": "priority_weight",
    "tag": "tags",
    "allowed_agent": "allowed_agents",
    "allowed_model": "allowed_models",
    "spend_limit": "spend_limit_usd",
}


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    """The pool settings given on the command line (a command passes its ``locals()``)."""
    import math

    for name in _SETTINGS:
        value = options.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            flag = "--" + name.replace("_", "-")
            raise UsageProblem(f"{flag} must be a finite number, got {value}")
    return {
        wire: options[name]
        for name, wire in _SETTINGS.items()
        if options.get(name) is not None and options.get(name) != []
    }


def _show(pool: dict[str, Any], fmt: str, fields: str | None) -> None:
    from envpools_cli.output.formats import emit_record, parse_fields

    if fmt == "table" and fields is None:
        from envpools_cli.output.describe import print_sections
        from envpools_cli.output.pools import pool_sections
        from envpools_cli.output.streams import is_tty

        print_sections(pool_sections(pool, terminal=is_tty()))
        return
    emit_record(
        pool, fmt, fields=parse_fields(fields), id_key="pool_id", order=[k for _, k in COLUMNS_SPEC]
    )


@app.command("list")
def list_pools(
    pool_type: TypeOpt = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only pools with this tag.")] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
    wide: WideOpt = False,
) -> None:
    """List pools.

    Example: envpools pools list --tag gpu -o json
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import emit, parse_fields

    fmt = output_format(output, as_json, quiet, fields=fields, wide=wide)
    pools = ep.list_pools(pool_type=pool_type, tag=tag, **runtime.conn())
    emit(
        pools,
        fmt,
        columns=_columns(),
        fields=parse_fields(fields),
        id_key="pool_id",
        empty="No pools. Create one with 'envpools pools create'.",
        wide=wide,
    )


@app.command("get")
def get_pool(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Show one pool with its tasks.

    Example: envpools pools get local-coding -o yaml
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    _show(ep.get_pool(pool_id, **runtime.conn()), fmt, fields)


@app.command("create")
def create_pool(
    pool_id: Annotated[
        str | None, typer.Argument(help="Pool id (or in --from-file).", show_default=False)
    ] = None,
    pool_type: TypeOpt = None,
    template: TemplateOpt = None,
    backend: BackendOpt = None,
    concurrency: ConcurrencyOpt = None,
    capacity: CapacityOpt = None,
    max_queue: MaxQueueOpt = None,
    max_running: MaxRunningOpt = None,
    priority_weight: PriorityOpt = None,
    tag: TagOpt = None,
    allowed_agent: AgentOpt = None,
    allowed_model: ModelOpt = None,
    spend_limit: SpendOpt = None,
    local: LocalOpt = None,
    from_file: FromFileOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Create a pool from flags or from a JSON/YAML file.

    Example: envpools pools create local-coding --type sandbox --concurrency 2 --tag py
    --local ./my-task
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    body = read_object(from_file, "--from-file", "pool")
    if pool_id:
        body["pool_id"] = pool_id
    if "pool_id" not in body:
        raise UsageProblem("give a POOL_ID argument or a pool_id in --from-file")
    body.update(_settings(locals()))
    if template and template not in [t.value for t in ep.PoolTemplate]:
        raise UsageProblem(
            f"unknown template {template!r}; use one of "
            f"{', '.join(t.value for t in ep.PoolTemplate)}"
        )
    if local:
        body.setdefault("tasks", [])
        body["tasks"] = list(body["tasks"]) + [local_task_body(path) for path in local]
    if "pool_type" not in body and not template:
        body["pool_type"] = "sandbox"
    pool = ep.create_pool(request=body, template=template, **runtime.conn())
    _show(pool, fmt, fields)


@app.command("update")
def update_pool(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    pool_type: TypeOpt = None,
    template: TemplateOpt = None,
    backend: BackendOpt = None,
    concurrency: ConcurrencyOpt = None,
    capacity: CapacityOpt = None,
    max_queue: MaxQueueOpt = None,
    max_running: MaxRunningOpt = None,
    priority_weight: PriorityOpt = None,
    tag: TagOpt = None,
    allowed_agent: AgentOpt = None,
    allowed_model: ModelOpt = None,
    spend_limit: SpendOpt = None,
    from_file: FromFileOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Change some of a pool's settings (only the ones given).

    Example: envpools pools update local-coding --concurrency 4
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    body = read_object(from_file, "--from-file", "pool")
    body.update(_settings(locals()))
    if not body:
        raise UsageProblem("nothing to change: give at least one setting or --from-file")
    _show(ep.update_pool(pool_id, request=body, **runtime.conn()), fmt, fields)


@app.command("delete")
def delete_pool(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    yes: YesOpt = False,
) -> None:
    """Delete a pool and its task definitions.

    Example: envpools pools delete old-pool --yes
    """
    from envpools_cli import client as ep
    from envpools_cli.output.messages import success

    confirm_destructive(f"delete pool {pool_id!r}", yes)
    ep.delete_pool(pool_id, **runtime.conn())
    success(f"deleted pool {pool_id}")


@app.command("metrics")
def pool_metrics(
    pool_id: Annotated[str, typer.Argument(help="Pool id.")],
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Queue depth, running count, totals and success rate of a pool.

    Example: envpools pools metrics local-coding --json
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import emit_record, parse_fields

    fmt = output_format(output, as_json, quiet, fields=fields)
    metrics = ep.get_pool_metrics(pool_id, **runtime.conn())
    metrics.setdefault("pool_id", pool_id)
    emit_record(metrics, fmt, fields=parse_fields(fields), id_key="pool_id")
