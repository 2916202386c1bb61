"""envpools rollouts wait / tail: follow rollouts until they finish, for people and CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._ids import resolve_rollout_id, resolve_rollout_ids
from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    check_writable_file,
    output_format,
)
from envpools_cli.runtime import runtime

__all__ = ["tail", "wait"]


def wait(
    rollout_ids: Annotated[list[str], typer.Argument(help="Rollout id(s).")],
    timeout: Annotated[
        float, typer.Option("--timeout", help="Overall seconds before giving up (exit 3).")
    ] = 3600.0,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.1,
            help="Accepted for older scripts; waiting follows the event stream and never polls.",
        ),
    ] = 2.0,
    min_reward: Annotated[
        float | None, typer.Option("--min-reward", help="A reward below this exits 5.")
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", metavar="FILE", help="Write a JUnit XML report for CI."),
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Wait until rollouts finish; exit 0 if all succeeded, 5 if not, 3 on timeout.

    Returns the moment each rollout is terminal, following its events; network
    trouble does not end the wait. Exit 7 instead of 5 when those that did not
    succeed all ended in a transient error (the provider's 429s or 5xx, no answer
    in time, a backend restart): safe to run again.

    Example: envpools rollouts wait ro_1 ro_2 --timeout 1800 --min-reward 1 --junit report.xml
    """
    from envpools_cli.watch import wait_and_report

    fmt = output_format(output, as_json, quiet, fields=fields)
    if timeout <= 0:
        raise UsageProblem("--timeout must be positive")
    check_writable_file(junit, "--junit")
    code = wait_and_report(
        resolve_rollout_ids(rollout_ids),
        runtime.conn(),
        timeout=timeout,
        min_reward=min_reward,
        junit=junit,
        fmt=fmt,
        fields=fields,
        interval=interval,
        single=len(rollout_ids) == 1,
    )
    if code:
        raise typer.Exit(code)


def tail(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            "-f/-F",
            help="Keep following until the rollout ends (default), or print what happened so "
            "far and exit.",
        ),
    ] = True,
    since: Annotated[
        str | None, typer.Option("--since", metavar="RFC3339", help="Only events after this time.")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Only events after this event id.")
    ] = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="Only these event types, comma-separated (lifecycle, agent, verifier, reward).",
        ),
    ] = None,
    exit_status: Annotated[
        bool,
        typer.Option(
            "--exit-status", help="Exit 0 if the rollout succeeded, 5 if not, 3 if still going."
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop following after this many seconds (exit 3)."),
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    resumed_after: Annotated[
        str | None,
        typer.Option(
            "--resume-after-cut",
            hidden=True,
            help="Set by tail's fast path when it hands over after a cut connection: "
            "what cut it (said once, then resumed from --cursor).",
        ),
    ] = None,
) -> None:
    """Follow a rollout's events: a live view on a terminal, plain lines or JSON otherwise.

    Resumes by itself after dropped connections, without losing or repeating events,
    and says so when the server could not replay some.

    Example: envpools rollouts tail ro_18ec37 --type agent,reward -o jsonl | jq .data
    """
    from envpools_cli.watch import follow_to_end

    fmt = output_format(output, as_json, False)
    if fmt not in ("table", "json", "jsonl"):
        raise UsageProblem(f"tail prints a live view, json or jsonl, not {fmt}")
    if since is not None and cursor is not None:
        raise UsageProblem("choose --since or --cursor: both say where to start")
    if since is not None:
        from envpools_cli.output.units import parse_time

        if parse_time(since) is None:
            raise UsageProblem(
                f"--since expects an RFC 3339 time (2025-01-31T12:00:00Z), got {since!r}"
            )
    if timeout is not None and not follow:
        raise UsageProblem("--timeout applies to --follow; --no-follow ends when caught up")
    if timeout is not None and timeout <= 0:
        raise UsageProblem(f"--timeout must be positive, got {timeout:g}")
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None
    known = {"lifecycle", "agent", "verifier", "reward", "gap", "status"}
    if wanted and not wanted <= known:
        raise UsageProblem(
            f"unknown event type(s) {', '.join(sorted(wanted - known))}; "
            f"use {', '.join(sorted(known - {'status'}))}"
        )
    rollout_id = resolve_rollout_id(rollout_id)
    code = follow_to_end(
        rollout_id,
        runtime.conn(),
        timeout=timeout,
        exit_status=exit_status,
        follow=follow,
        since=since,
        cursor=cursor,
        types=wanted,
        fmt=fmt,
        resumed_after=resumed_after,
    )
    if code:
        raise typer.Exit(code)
