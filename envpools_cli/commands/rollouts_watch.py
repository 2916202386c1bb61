"""envpools rollouts wait / tail: follow rollouts until they finish, for people and CI."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import (
    EXIT_NOT_SUCCEEDED,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageProblem,
)
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

__all__ = ["follow_to_end", "status_exit_code", "tail", "wait", "wait_and_report"]


def _terminal(doc: dict[str, Any]) -> bool:
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    return RolloutStatus.terminal(doc.get("status"))


def _succeeded(doc: dict[str, Any]) -> bool:
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    return RolloutStatus.succeeded(doc.get("status"))


def status_exit_code(
    docs: list[dict[str, Any]], min_reward: float | None, *, timed_out: bool
) -> int:
    """0 all succeeded (and reached min_reward); 5 any ended otherwise; 3 any still going."""
    failed = False
    for doc in docs:
        if not _terminal(doc):
            continue
        if not _succeeded(doc):
            failed = True
        elif min_reward is not None:
            reward = doc.get("reward_primary")
            if not isinstance(reward, int | float) or reward < min_reward:
                failed = True
    if failed:
        return EXIT_NOT_SUCCEEDED
    if timed_out or any(not _terminal(d) for d in docs):
        return EXIT_TIMEOUT
    return EXIT_OK


def watch_one(
    rollout_id: str, deadline: float, interval: float, on_status: Any = None
) -> tuple[dict[str, Any], bool]:
    """(final or last state, timed out), via RolloutHandle.wait: events first, polls if needed."""
    from envpools_cli import client as ep

    handle = ep.RolloutHandle(rollout_id, **runtime.conn())
    doc = handle.wait(
        timeout=max(0.0, deadline - time.monotonic()),
        poll_interval=interval,
        on_status=None if on_status is None else lambda status: on_status(rollout_id, status),
    )
    return doc, not _terminal(doc)


def wait_and_report(
    ids: list[str],
    *,
    timeout: float,
    min_reward: float | None,
    junit: Path | None,
    fmt: str,
    fields: str | None,
    interval: float = 2.0,
    single: bool = False,
) -> None:
    """Wait for every rollout at once, print their final states, exit with the verdict.

    ``single``: the command was about one rollout, so machine output is one object.
    """
    from envpools_cli.output.progress import WaitProgress, summary_line
    from envpools_cli.output.rollouts import show_rollouts

    deadline = time.monotonic() + timeout
    results: dict[str, tuple[dict[str, Any], bool]] = {}
    failures: dict[str, BaseException] = {}

    with WaitProgress(ids) as progress:

        def work(rollout_id: str) -> None:
            try:
                results[rollout_id] = watch_one(rollout_id, deadline, interval, progress.status)
                progress.finished(results[rollout_id][0])
            except BaseException as exc:  # handed to the main thread
                failures[rollout_id] = exc

        threads = [threading.Thread(target=work, args=(rid,), daemon=True) for rid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    for exc in failures.values():
        raise exc
    docs = [results[rid][0] for rid in ids]
    timed_out = {rid for rid in ids if results[rid][1]}
    if junit is not None:
        from envpools_cli.output.wait_junit import write_junit

        write_junit(junit, docs, min_reward, timed_out)
    show_rollouts(docs, fmt, fields, single=single)
    code = status_exit_code(docs, min_reward, timed_out=bool(timed_out))
    progress.report(docs, summary_line(docs, min_reward, len(timed_out), timeout))
    if code:
        raise typer.Exit(code)


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
    trouble does not end the wait.

    Example: envpools rollouts wait ro_1 ro_2 --timeout 1800 --min-reward 1 --junit report.xml
    """
    fmt = output_format(output, as_json, quiet, fields=fields)
    if timeout <= 0:
        raise UsageProblem("--timeout must be positive")
    check_writable_file(junit, "--junit")
    wait_and_report(
        resolve_rollout_ids(rollout_ids),
        timeout=timeout,
        min_reward=min_reward,
        junit=junit,
        fmt=fmt,
        fields=fields,
        interval=interval,
        single=len(rollout_ids) == 1,
    )


def _stream_events(
    rollout_id: str,
    *,
    follow: bool,
    since: str | None,
    cursor: str | None,
    types: set[str] | None,
    view: Any,
    timeout: float | None,
) -> str:
    """Feed events to ``view``; return why it ended: terminal, caught_up or timeout.

    Reconnecting is the client's (``ReconnectPolicy.watching``): resumes after drops and
    early closes, fails in seconds when the backend cannot be reached at all.
    """
    from envpools_cli import client as ep

    conn = runtime.conn()
    stop_seq: int | None = None
    if not follow:
        last = ep.get_rollout_summary(rollout_id, **conn).get("last_event") or {}
        stop_seq = int(last["seq"]) if isinstance(last.get("seq"), int) else 0
        if stop_seq == 0:
            return "caught_up"
    with ep.stream_rollout_events(
        rollout_id,
        since=since,
        cursor=cursor,
        auto_reconnect=True,
        reconnect=ep.ReconnectPolicy.watching(deadline=timeout),
        on_gap="report",
        on_reconnect=view.reconnecting,
        **conn,
    ) as stream:
        for event in stream:
            _show_event(event, types, view)
            seq = event.get("seq")
            if stop_seq is not None and isinstance(seq, int) and seq >= stop_seq:
                return "caught_up"
    return "timeout" if stream.timed_out else "terminal"


def _show_event(event: dict[str, Any], types: set[str] | None, view: Any) -> None:
    kind = event.get("event")
    if kind == "heartbeat":
        view.heartbeat()
    elif kind == "gap":
        from envpools_cli.output.rollouts import describe_event

        view.notice("warning: " + describe_event(event))
        if types is None or "gap" in types:
            view.event(event)
    elif types is None or kind in types or (kind == "lifecycle" and "status" in types):
        view.event(event)


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
) -> None:
    """Follow a rollout's events: a live view on a terminal, plain lines or JSON otherwise.

    Resumes by itself after dropped connections, without losing or repeating events,
    and says so when the server could not replay some.

    Example: envpools rollouts tail ro_18ec37 --type agent,reward -o jsonl | jq .data
    """
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
    follow_to_end(
        resolve_rollout_id(rollout_id),
        timeout=timeout,
        exit_status=exit_status,
        follow=follow,
        since=since,
        cursor=cursor,
        types=wanted,
        fmt=fmt,
    )


def follow_to_end(
    rollout_id: str,
    *,
    timeout: float | None,
    exit_status: bool,
    follow: bool = True,
    since: str | None = None,
    cursor: str | None = None,
    types: set[str] | None = None,
    fmt: str = "table",
) -> None:
    from envpools_cli import client as ep
    from envpools_cli.output.tail import make_view

    with make_view(rollout_id, fmt) as view:
        reason = _stream_events(
            rollout_id,
            follow=follow,
            since=since,
            cursor=cursor,
            types=types,
            view=view,
            timeout=timeout,
        )
        doc = ep.get_rollout(rollout_id, **runtime.conn())
        view.end(reason, doc.get("status"))
    if fmt == "table":
        from envpools_cli.output.messages import info

        reward = doc.get("reward_primary")
        info(
            f"{rollout_id}: {doc.get('status')}"
            + (f", reward {reward:g}" if isinstance(reward, int | float) else "")
        )
    if reason == "timeout":
        raise typer.Exit(EXIT_TIMEOUT)
    if exit_status:
        code = status_exit_code([doc], None, timed_out=False)
        if code:
            raise typer.Exit(code)
