"""envpools queue: what is waiting and what is running."""

from __future__ import annotations

import typer

from envpools_cli.commands._options import FieldsOpt, JsonOpt, OutputOpt, output_format
from envpools_cli.runtime import runtime

app = typer.Typer(help="The rollout queue.", no_args_is_help=True)


@app.command("status")
def status(output: OutputOpt = None, as_json: JsonOpt = False, fields: FieldsOpt = None) -> None:
    """Queued and running rollouts per pool.

    Example: envpools queue status
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import Column, emit, emit_record, parse_fields

    fmt = output_format(output, as_json, False)
    data = ep.get_queue_status(**runtime.conn())
    if fmt != "table":
        emit_record(data, fmt, fields=parse_fields(fields))
        return
    emit(
        list(data.get("pools") or []),
        "table",
        columns=[
            Column("POOL", "pool_id", render=lambda v: v or "(ad hoc)", kind="id"),
            Column("QUEUED", "queued"),
            Column("RUNNING", "running"),
            Column("NEXT WAITS FOR", "waiting.message", render=lambda v: v or "", ratio=3),
        ],
        fields=parse_fields(fields),
        empty="No pools.",
    )
    from envpools_cli.output.messages import info

    info(f"total: {data.get('total_queued', 0)} queued, {data.get('total_running', 0)} running")
    scheduling = data.get("scheduling")
    if isinstance(scheduling, dict):
        from envpools_cli.output.queue import scheduling_lines

        for line in scheduling_lines(scheduling):
            info(line)
