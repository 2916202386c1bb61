"""Following rollouts to their end: wait for many at once, stream one's events, and the
verdict as an exit code. Shared by ``rollouts wait``, ``tail``, ``create --wait/--follow``,
``get --exit-status`` and ``demo``; each returns the exit code for its command to raise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envpools_cli.cli_errors import EXIT_NOT_SUCCEEDED, EXIT_OK, EXIT_TIMEOUT, EXIT_TRANSIENT
from envpools_cli.error_codes import is_transient

__all__ = ["follow_to_end", "status_exit_code", "wait_and_report", "watch_one"]


def _terminal(doc: dict[str, Any]) -> bool:
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    return RolloutStatus.terminal(doc.get("status"))


def _succeeded(doc: dict[str, Any]) -> bool:
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    return RolloutStatus.succeeded(doc.get("status"))


def status_exit_code(
    docs: list[dict[str, Any]], min_reward: float | None, *, timed_out: bool
) -> int:
    """0 all succeeded (and reached min_reward); 5 any ended otherwise; 7 when those that
    did not succeed all ended in a transient error (a 429 or 5xx from the provider, no
    answer in time, a backend restart: safe to run again); 3 any still going."""
    failed = transient = False
    for doc in docs:
        if not _terminal(doc):
            continue
        if not _succeeded(doc):
            if is_transient(doc.get("status"), doc.get("error")):
                transient = True
            else:
                failed = True
        elif min_reward is not None:
            reward = doc.get("reward_primary")
            if not isinstance(reward, int | float) or reward < min_reward:
                failed = True
    if failed:
        return EXIT_NOT_SUCCEEDED
    if transient:
        return EXIT_TRANSIENT
    if timed_out or any(not _terminal(d) for d in docs):
        return EXIT_TIMEOUT
    return EXIT_OK


def watch_one(
    rollout_id: str,
    deadline: float,
    interval: float,
    conn: dict[str, Any],
    on_status: Callable[[str, str], None] | None = None,
    on_seed: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """(final or last state, timed out), via RolloutHandle.wait: events first, polls if needed.

    ``on_seed`` hears the rollout as it is when the wait begins (a live view times its
    status from the rollout's own timestamps)."""
    from envpools_cli import client as ep

    handle = ep.RolloutHandle(rollout_id, **conn)
    if on_seed is not None:
        on_seed(handle.get())
    doc = handle.wait(
        timeout=max(0.0, deadline - time.monotonic()),
        poll_interval=interval,
        on_status=None if on_status is None else lambda status: on_status(rollout_id, status),
    )
    return doc, not _terminal(doc)


def wait_and_report(
    ids: list[str],
    conn: dict[str, Any],
    *,
    timeout: float,
    min_reward: float | None,
    junit: Path | None,
    fmt: str,
    fields: str | None,
    interval: float = 2.0,
    single: bool = False,
) -> int:
    """Wait for every rollout at once, print their final states; the verdict's exit code.

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
                results[rollout_id] = watch_one(
                    rollout_id,
                    deadline,
                    interval,
                    conn,
                    progress.status,
                    progress.seed if progress.live_enabled else None,
                )
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
    return code


def _stream_events(
    rollout_id: str,
    conn: dict[str, Any],
    *,
    follow: bool,
    since: str | None,
    cursor: str | None,
    types: set[str] | None,
    view: Any,
    timeout: float | None,
    resumed_after: str | None = None,
) -> str:
    """Feed events to ``view``; return why it ended: terminal, caught_up or timeout.

    Reconnecting is the client's (``ReconnectPolicy.watching``): resumes after drops and
    early closes, fails in seconds when the backend cannot be reached at all. Every
    interruption is said once: ``resumed_after`` is the cut after which the fast path
    handed this stream over (the backend was reached already: what follows is an outage).
    """
    from envpools_cli import client as ep

    if resumed_after is not None:
        view.resuming(resumed_after)
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
        reconnect=ep.ReconnectPolicy.watching(deadline=timeout, resumed=resumed_after is not None),
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


def follow_to_end(
    rollout_id: str,
    conn: dict[str, Any],
    *,
    timeout: float | None,
    exit_status: bool,
    follow: bool = True,
    since: str | None = None,
    cursor: str | None = None,
    types: set[str] | None = None,
    fmt: str = "table",
    resumed_after: str | None = None,
) -> int:
    """Show a rollout's events until it ends (or, without ``follow``, until caught up).

    The exit code: 3 when ``timeout`` ran out; with ``exit_status``, the rollout's verdict.
    """
    from envpools_cli import client as ep
    from envpools_cli.output.tail import make_view

    with make_view(rollout_id, fmt) as view:
        reason = _stream_events(
            rollout_id,
            conn,
            follow=follow,
            since=since,
            cursor=cursor,
            types=types,
            view=view,
            timeout=timeout,
            resumed_after=resumed_after,
        )
        doc = ep.get_rollout(rollout_id, **conn)
        view.end(reason, doc.get("status"))
    if fmt == "table":
        from envpools_cli.output.messages import info

        reward = doc.get("reward_primary")
        error = doc.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        info(
            f"{rollout_id}: {doc.get('status')}"
            + (f" ({code})" if code else "")
            + (f", reward {reward:g}" if isinstance(reward, int | float) else "")
        )
    if reason == "timeout":
        return EXIT_TIMEOUT
    if exit_status:
        return status_exit_code([doc], None, timed_out=False)
    return EXIT_OK


def recent_events(
    rollout_id: str, conn: dict[str, Any], count: int = 5
) -> tuple[list[dict[str, Any]], int]:
    """(the last ``count`` events but heartbeats, how many there are), for ``rollouts get``.

    Reads up to the rollout's latest event as the summary names it, then stops (a running
    rollout's stream is not waited on). Where event ids are their ``seq`` (the local
    backend) the read starts ``count`` events before the end; elsewhere it reads from
    the start and keeps the tail.
    """
    from collections import deque

    from envpools_cli import client as ep

    summary = ep.get_rollout_summary(rollout_id, **conn)
    found = summary.get("last_event")
    last: dict[str, Any] = found if isinstance(found, dict) else {}
    total = summary.get("event_count")
    stop = last.get("seq")
    if not isinstance(stop, int) or stop <= 0:
        return [], 0
    cursor = None
    if str(last.get("id")) == str(stop):  # ids are sequence numbers: jump near the end
        cursor = str(max(0, stop - count * 4))
    kept: deque[dict[str, Any]] = deque(maxlen=count)
    with ep.stream_rollout_events(
        rollout_id, cursor=cursor, auto_reconnect=True, on_gap="ignore", **conn
    ) as stream:
        for event in stream:
            if event.get("event") != "heartbeat":
                kept.append(event)
            seq = event.get("seq")
            if isinstance(seq, int) and seq >= stop:
                break
    return list(kept), total if isinstance(total, int) else stop
