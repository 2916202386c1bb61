"""envpools rollouts: launch agents against tasks, follow them, read their results."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import CLIError, UsageProblem
from envpools_cli.commands._ids import resolve_rollout_id, resolve_rollout_ids
from envpools_cli.commands._options import (
    FieldsOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    WideOpt,
    YesOpt,
    confirm_destructive,
    output_format,
    parse_pairs,
    read_document,
    read_object,
)
from envpools_cli.output.rollouts import show_rollout, show_rollouts
from envpools_cli.runtime import runtime
from envpools_cli.shared import ROLLOUTS_LIST_LIMIT, follow_rollout_pages

app = typer.Typer(
    help="Rollouts: one agent attempt at one task, with events, artifacts and usage.",
    no_args_is_help=True,
)

RolloutArg = Annotated[str, typer.Argument(help="Rollout id.")]


def build_request(
    *,
    base: dict[str, Any],
    task: str | None,
    agent: str | None,
    model: str | None,
    agent_version: str | None,
    pool: str | None,
    pool_tags: list[str] | None,
    env_backend: str | None,
    docker_image: str | None,
    task_app_url: str | None,
    task_app_id: str | None,
    agent_timeout: int | None,
    verifier_timeout: int | None,
    build_timeout: int | None,
    priority: int | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """A RolloutRequestV1 dict: the file's fields, overridden by flags."""
    request: dict[str, Any] = json.loads(json.dumps(base))
    if task:
        dataset, sep, task_id = task.partition("/")
        if not sep and dataset and pool:
            # A task of the pool, by its id: the pool's name stands for the dataset.
            dataset, task_id = pool, task
        elif not sep and dataset:
            raise UsageProblem(
                f"--task {task!r} names a task but not where it is: add --pool POOL (a task "
                "of that pool), or give DATASET/TASK_ID (e.g. envpools-examples/"
                "fix-failing-test, the bundled example)"
            )
        if not dataset or not task_id:
            raise UsageProblem(
                f"--task expects TASK_ID (with --pool) or DATASET/TASK_ID, got {task!r}"
            )
        request["task_ref"] = {
            **(request.get("task_ref") or {}),
            "dataset": dataset,
            "task_id": task_id,
        }
    if agent or model or agent_version:
        spec = dict(request.get("agent") or {})
        if agent:
            spec = {"harness": agent}
        if model:
            spec["model_id"] = model
        if agent_version:
            spec["harness_version"] = agent_version
        request["agent"] = spec
    if pool:
        request["pool_id"] = pool
    if pool_tags:
        request["pool_tags"] = pool_tags
    if env_backend or docker_image:
        environment = dict(request.get("environment") or {})
        if env_backend:
            environment["backend"] = env_backend
        if docker_image:
            environment["docker_image"] = docker_image
        request["environment"] = environment
    if task_app_url:
        request["task_app_url"] = task_app_url
    if task_app_id is not None:
        request["task_app_id"] = task_app_id
    if not any(
        k in request for k in ("task_app_url", "task_app_id", "container_url", "container_id")
    ):
        request["task_app_id"] = ""  # the contract wants one; local pools need neither
    timeouts = dict(request.get("timeouts") or {})
    for key, value in (
        ("agent_sec", agent_timeout),
        ("verifier_sec", verifier_timeout),
        ("build_sec", build_timeout),
    ):
        if value is not None:
            timeouts[key] = value
    request["timeouts"] = timeouts
    if priority is not None:
        request["priority"] = priority
    if metadata:
        request["metadata"] = {**(request.get("metadata") or {}), **metadata}
    missing = [
        name for name, key in (("--task", "task_ref"), ("--agent", "agent")) if key not in request
    ]
    if missing:
        raise UsageProblem(f"missing {' and '.join(missing)} (or give them in --from-file)")
    if not any(request.get(k) for k in ("pool_id", "pool_tags", "environment")):
        raise UsageProblem("say where to run it: --pool, --pool-tag or --env-backend")
    return request


def _batch_endpoint_missing(exc: Exception) -> bool:
    """A backend without ``rollouts/batch`` (not a missing pool or task)."""
    from envpools_cli import client as ep

    if isinstance(exc, ep.APIError) and exc.status_code == 405:
        return True
    return isinstance(exc, ep.NotFoundError) and (
        exc.message.startswith("no route") or exc.message == "Not Found"
    )


def _create_all(
    requests: list[dict[str, Any]], idempotency_key: str | None, conn: dict[str, Any]
) -> list[dict[str, Any]]:
    """One create, or the batch endpoint, or bounded concurrent creates without it."""
    from envpools_cli import client as ep
    from envpools_cli.output.messages import warn

    if len(requests) == 1:
        return [ep.create_rollout(request=requests[0], idempotency_key=idempotency_key, **conn)]
    key = idempotency_key or ep.new_idempotency_key()
    try:
        result = ep.create_rollouts_batch(requests=requests, idempotency_key=key, **conn)
    except ep.APIError as exc:
        if not _batch_endpoint_missing(exc):
            raise
        warn("this backend has no batch endpoint; creating the rollouts one by one, 8 at a time")
        result = ep.create_rollouts_concurrently(requests=requests, idempotency_key=key, **conn)
    for failure in result.get("errors") or []:
        error = failure.get("error") or {}
        warn(f"request {failure.get('index')}: {error.get('code')}: {error.get('message')}")
    created = list(result.get("rollouts") or [])
    if not created:
        raise CLIError("the backend created none of the rollouts")
    return created


def _refuse_unavailable_agent(request: dict[str, Any], conn: dict[str, Any]) -> None:
    """Fail now, not after queueing, when the backend says it cannot run this agent."""
    from envpools_cli import client as ep

    harness = (request.get("agent") or {}).get("harness")
    try:
        agents = ep.get_capabilities(**conn).get("agents") or []
    except (ep.TransportError, ep.APIError):
        return  # the create itself will report a real problem
    for entry in agents:
        if (
            isinstance(entry, dict)
            and entry.get("name") == harness
            and (entry.get("available") is False)
        ):
            raise CLIError(
                f"agent {harness!r} is not available on this backend: "
                f"{entry.get('reason') or 'no reason given'}",
                hint="'envpools capabilities get' lists the agents it can run",
                code="agent_unavailable",
            )


_WAIT_DEFAULT_SEC = 3600.0


def _check_create_flags(
    *,
    wait: bool,
    follow: bool,
    dry_run: bool,
    quiet: bool,
    idempotency_key: str | None,
    timeout: float | None,
    min_reward: float | None,
) -> None:
    """Flag combinations that cannot work, refused before any request is sent."""
    if wait and follow:
        raise UsageProblem("choose --wait or --follow")
    if dry_run and (wait or follow):
        raise UsageProblem(f"--dry-run creates nothing to {'wait for' if wait else 'follow'}")
    if dry_run and quiet:
        raise UsageProblem("--dry-run creates nothing, so -q has no id to print")
    if dry_run and idempotency_key is not None:
        raise UsageProblem("--dry-run creates nothing for --idempotency-key to protect")
    if min_reward is not None and not wait:
        raise UsageProblem("--min-reward applies to --wait")
    if timeout is not None and not (wait or follow):
        raise UsageProblem("--timeout applies to --wait or --follow")
    if timeout is not None and timeout <= 0:
        raise UsageProblem("--timeout must be positive")


@app.command("create")
def create(
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            "-t",
            metavar="[DATASET/]TASK_ID",
            help="The task to run: a task id of --pool, or DATASET/TASK_ID.",
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            "-a",
            help="codex, claude-code, opencode, or a backend harness "
            "(oracle, nop on the local backend).",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model id.")] = None,
    agent_version: Annotated[
        str | None, typer.Option("--agent-version", help="Pin the harness version.")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="Pool id.")] = None,
    pool_tag: Annotated[
        list[str] | None,
        typer.Option("--pool-tag", help="Route to a pool with this tag (repeatable)."),
    ] = None,
    env_backend: Annotated[
        str | None,
        typer.Option(
            "--env-backend", help="Ad-hoc environment: harbor, browser, openenv, archipelago."
        ),
    ] = None,
    docker_image: Annotated[str | None, typer.Option("--docker-image")] = None,
    task_app_url: Annotated[str | None, typer.Option("--task-app-url")] = None,
    task_app_id: Annotated[str | None, typer.Option("--task-app-id")] = None,
    agent_timeout: Annotated[
        int | None, typer.Option("--agent-timeout", min=1, help="Seconds.")
    ] = None,
    verifier_timeout: Annotated[
        int | None, typer.Option("--verifier-timeout", min=1, help="Seconds.")
    ] = None,
    build_timeout: Annotated[
        int | None, typer.Option("--build-timeout", min=1, help="Seconds.")
    ] = None,
    priority: Annotated[int | None, typer.Option("--priority")] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", metavar="KEY=VALUE", help="Metadata (repeatable)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Reuse to make a retried create a no-op."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and route only.")] = False,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", "-f", help="Request as JSON/YAML (file, or - for stdin)."),
    ] = None,
    count: Annotated[
        int,
        typer.Option("--count", "-n", min=1, max=1000, help="Create N rollouts (batch endpoint)."),
    ] = 1,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until finished; exit 0 on success, 5 otherwise, 3 on timeout."
        ),
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Tail the events live.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="For --wait/--follow, seconds [default: 3600]."),
    ] = None,
    min_reward: Annotated[
        float | None, typer.Option("--min-reward", help="With --wait: a lower reward exits 5.")
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Launch a rollout: an agent against a task in a pool.

    Example: envpools rollouts create --agent codex --task envpools-examples/fix-failing-test
    --pool local-coding --wait
    """
    from envpools_cli import client as ep
    from envpools_cli.output.messages import info

    fmt = output_format(output, as_json, quiet, fields=fields)
    _check_create_flags(
        wait=wait,
        follow=follow,
        dry_run=dry_run,
        quiet=fmt == "name",
        idempotency_key=idempotency_key,
        timeout=timeout,
        min_reward=min_reward,
    )
    bases: list[dict[str, Any]] = [{}]
    file_is_list = False
    if from_file:
        document = read_document(from_file)
        file_is_list = isinstance(document, list)
        documents = document if isinstance(document, list) else [document]
        if not documents or not all(isinstance(d, dict) for d in documents):
            raise UsageProblem("--from-file must hold a request object or a list of them")
        bases = documents
    # A file holding a list asked about many, even a list of one: the answer is a list.
    single = count == 1 and not file_is_list
    if follow and len(bases) * count > 1:
        raise UsageProblem(
            f"--follow works with one rollout, not {len(bases) * count}; use --wait for a batch"
        )
    requests = [
        build_request(
            base=base,
            task=task,
            agent=agent,
            model=model,
            agent_version=agent_version,
            pool=pool,
            pool_tags=pool_tag,
            env_backend=env_backend,
            docker_image=docker_image,
            task_app_url=task_app_url,
            task_app_id=task_app_id,
            agent_timeout=agent_timeout,
            verifier_timeout=verifier_timeout,
            build_timeout=build_timeout,
            priority=priority,
            metadata=parse_pairs(metadata, "--metadata"),
        )
        for base in bases
    ] * count
    conn = runtime.conn()
    for request in requests:  # agent/model checks first: no request for preset agents
        ep.validate_rollout_request(request, **conn)
    for harness in {str((r.get("agent") or {}).get("harness")) for r in requests}:
        _refuse_unavailable_agent({"agent": {"harness": harness}}, conn)
    if dry_run:
        from envpools_cli.output.formats import Column, emit, emit_record, parse_fields

        results = [ep.create_rollout(request=r, dry_run=True, **conn) for r in requests]
        shown = "json" if fmt == "name" else fmt  # a dry run has no id to print
        if len(results) == 1:
            emit_record(results[0], shown, fields=parse_fields(fields))
        else:
            emit(
                results,
                shown,
                fields=parse_fields(fields),
                columns=[Column("STATUS", "status"), Column("POOL", "selected_pool_id")],
            )
        return
    created = _create_all(requests, idempotency_key, conn)
    ids = [str(item.get("rollout_id")) for item in created]
    if fmt == "table":
        info(f"created {', '.join(ids)}")
    if wait:
        from envpools_cli.watch import wait_and_report

        code = wait_and_report(
            ids,
            conn,
            timeout=timeout or _WAIT_DEFAULT_SEC,
            min_reward=min_reward,
            junit=None,
            fmt=fmt,
            fields=fields,
            single=single,
        )
        if code:
            raise typer.Exit(code)
        return
    if follow:
        from envpools_cli.watch import follow_to_end

        show_rollouts(created, "name" if fmt == "table" else fmt, fields, single=True)
        code = follow_to_end(ids[0], conn, timeout=timeout or _WAIT_DEFAULT_SEC, exit_status=True)
        if code:
            raise typer.Exit(code)
        return
    show_rollouts(created, fmt, fields, single=single)


@app.command("get")
def get(
    rollout_id: RolloutArg,
    exit_status: Annotated[
        bool,
        typer.Option(
            "--exit-status",
            help="Exit 0 if succeeded, 5 if it ended otherwise, 3 if still running.",
        ),
    ] = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Show a rollout: its task, agent, timing, usage (tokens, cached tokens, cost), error
    and last events.

    Example: envpools rollouts get ro_18ec37 -o json | jq .reward_primary
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    rollout = ep.get_rollout(resolve_rollout_id(rollout_id), **runtime.conn())
    events = None
    if fmt == "table" and fields is None and rollout.get("rollout_id"):
        from envpools_cli.watch import recent_events

        try:
            events = recent_events(str(rollout["rollout_id"]), runtime.conn())
        except (ep.APIError, ep.TransportError, ep.StreamGapError):
            events = None  # the rollout itself is what was asked for
    show_rollout(rollout, fmt, fields, events)
    if exit_status:
        from envpools_cli.watch import status_exit_code

        raise typer.Exit(status_exit_code([rollout], None, timed_out=False))


def _check_list_filters(
    status: str | None, created_after: str | None, created_before: str | None
) -> str | None:
    """The status to ask for; filters that can match nothing are refused here, not sent."""
    from envpools_cli.models import RolloutStatus
    from envpools_cli.output.units import parse_time

    wanted = RolloutStatus.parse(status)
    if status is not None and wanted is None:
        raise UsageProblem(
            f"unknown status {status!r}; use one of {', '.join(s.value for s in RolloutStatus)}"
        )
    after, before = parse_time(created_after), parse_time(created_before)
    for flag, given, parsed in (
        ("--created-after", created_after, after),
        ("--created-before", created_before, before),
    ):
        if given is not None and parsed is None:
            raise UsageProblem(
                f"{flag} expects an RFC 3339 time (2025-01-31T12:00:00Z), got {given!r}"
            )
    if after is not None and before is not None and after >= before:
        raise UsageProblem("--created-after must be earlier than --created-before")
    return None if wanted is None else wanted.value


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="Only this pool.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset")] = None,
    task_id: Annotated[str | None, typer.Option("--task-id")] = None,
    created_after: Annotated[str | None, typer.Option("--created-after", metavar="RFC3339")] = None,
    created_before: Annotated[
        str | None, typer.Option("--created-before", metavar="RFC3339")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-l", min=1, help="At most this many (pages are followed).")
    ] = ROLLOUTS_LIST_LIMIT,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Start at this page.")] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
    wide: WideOpt = False,
) -> None:
    """List rollouts, newest first.

    Example: envpools rollouts list --status failed --limit 20 -q
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields, wide=wide)
    status = _check_list_filters(status, created_after, created_before)
    conn = runtime.conn()
    found = follow_rollout_pages(
        lambda page_cursor, page_size: ep.list_rollouts(
            cursor=page_cursor,
            limit=page_size,
            status=status,
            pool_id=pool,
            dataset=dataset,
            task_id=task_id,
            created_after=created_after,
            created_before=created_before,
            **conn,
        ),
        limit,
        cursor,
    )
    show_rollouts(found or [], fmt, fields, empty="No rollouts.", wide=wide)


@app.command("summary")
def summary(
    rollout_id: RolloutArg,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Latest status, reward and last event of a rollout.

    Example: envpools rollouts summary ro_18ec37
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import emit_record, parse_fields

    fmt = output_format(output, as_json, quiet, fields=fields)
    data = ep.get_rollout_summary(resolve_rollout_id(rollout_id), **runtime.conn())
    if fmt == "table" and isinstance(data.get("last_event"), dict):
        from envpools_cli.output.rollouts import describe_event

        data = {**data, "last_event": describe_event(data["last_event"])}
    emit_record(data, fmt, fields=parse_fields(fields), id_key="rollout_id")


@app.command("cancel")
def cancel(
    rollout_ids: Annotated[list[str], typer.Argument(help="Rollout id(s).")],
    yes: YesOpt = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Cancel rollouts at any stage; finished ones are left as they are.

    Example: envpools rollouts cancel ro_18ec37 --yes
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    confirm_destructive(f"cancel {len(rollout_ids)} rollout(s)", yes)
    rollout_ids = resolve_rollout_ids(rollout_ids)
    conn = runtime.conn()
    docs = [ep.cancel_rollout(rid, **conn) for rid in rollout_ids]
    show_rollouts(docs, fmt, fields, single=len(rollout_ids) == 1)


@app.command("replay")
def replay(
    rollout_id: RolloutArg,
    agent: Annotated[str | None, typer.Option("--agent", help="Override the harness.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Override the model.")] = None,
    overrides: Annotated[
        str | None,
        typer.Option("--overrides", help="JSON/YAML file (or -) of request fields to override."),
    ] = None,
    metadata: Annotated[list[str] | None, typer.Option("--metadata", metavar="KEY=VALUE")] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Run a rollout's request again, optionally changed; prints the new rollout.

    Example: envpools rollouts replay ro_18ec37 --agent codex --model gpt-5.1-codex-mini
    """
    from envpools_cli import client as ep

    fmt = output_format(output, as_json, quiet, fields=fields)
    extra_metadata = parse_pairs(metadata, "--metadata")
    changes = read_object(overrides, "--overrides", "request-fields")
    if agent or model:
        spec = dict(changes.get("agent") or {})
        if agent:
            spec.update({"harness": agent, "kind": agent})
        if model:
            spec["model_id"] = model
        changes["agent"] = spec
    agent_spec = changes.get("agent")
    if isinstance(agent_spec, dict) and agent_spec.get("model_id"):
        from envpools_cli.models import PRESET_MODELS, check_agent_model

        harness = agent_spec.get("harness")
        if isinstance(harness, str) and harness in PRESET_MODELS:
            try:
                check_agent_model(harness, str(agent_spec["model_id"]))
            except ValueError as exc:
                raise UsageProblem(str(exc)) from None
    result = ep.replay_rollout(
        resolve_rollout_id(rollout_id),
        overrides=changes or None,
        metadata=extra_metadata or None,
        **runtime.conn(),
    )
    show_rollout(result, fmt, fields)


@app.command("validate")
def validate(
    from_file: Annotated[str | None, typer.Option("--from-file", "-f")] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            "-t",
            metavar="[DATASET/]TASK_ID",
            help="The task: a task id of --pool, or DATASET/TASK_ID.",
        ),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", "-a")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    pool: Annotated[str | None, typer.Option("--pool")] = None,
    pool_tag: Annotated[list[str] | None, typer.Option("--pool-tag")] = None,
    env_backend: Annotated[str | None, typer.Option("--env-backend")] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Ask the backend whether a request is valid and which pool it would use.

    Exits 0 when valid, 1 when not.

    Example: envpools rollouts validate --task d/t --agent codex --pool-tag py
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import emit_record, parse_fields

    fmt = output_format(output, as_json, quiet, fields=fields)
    base = read_object(from_file, "--from-file", "request")
    request = build_request(
        base=base,
        task=task,
        agent=agent,
        model=model,
        agent_version=None,
        pool=pool,
        pool_tags=pool_tag,
        env_backend=env_backend,
        docker_image=None,
        task_app_url=None,
        task_app_id=None,
        agent_timeout=None,
        verifier_timeout=None,
        build_timeout=None,
        priority=None,
        metadata={},
    )
    result = ep.validate_rollout(request=request, **runtime.conn())
    emit_record(result, fmt if fmt != "name" else "json", fields=parse_fields(fields))
    if not result.get("valid"):
        raise typer.Exit(1)


@app.command("usage")
def usage(
    rollout_id: RolloutArg,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Wall time, sandbox minutes, tokens, bytes and cost per provider.

    Example: envpools rollouts usage ro_18ec37
    """
    from envpools_cli import client as ep
    from envpools_cli.output.formats import emit_record, parse_fields

    fmt = output_format(output, as_json, quiet, fields=fields)
    rollout_id = resolve_rollout_id(rollout_id)
    data = ep.get_rollout_usage(rollout_id, **runtime.conn())
    data.setdefault("rollout_id", rollout_id)
    if fmt == "table" and fields is None:
        from envpools_cli.output.usage import print_usage

        print_usage(data)
        return
    emit_record(data, fmt, fields=parse_fields(fields), id_key="rollout_id")


@app.command("support-bundle")
def support_bundle(
    rollout_id: RolloutArg,
    out: Annotated[
        str | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Everything support needs about a rollout, as JSON, with secrets redacted.

    Example: envpools rollouts support-bundle ro_18ec37 --out bundle.json
    """
    from pathlib import Path

    from envpools_cli import client as ep
    from envpools_cli.output.messages import success
    from envpools_cli.output.streams import write_out

    runtime.json_errors = True
    if out is not None:
        target = Path(out)
        if target.is_dir():
            raise UsageProblem(f"--out {out} is a directory; name a file")
        if not target.parent.is_dir():
            raise UsageProblem(f"--out {out}: {target.parent} does not exist")
    rollout_id = resolve_rollout_id(rollout_id)
    conn = runtime.conn()
    bundle = ep.get_rollout_support_bundle(rollout_id, **conn)
    text = json.dumps(bundle, indent=2, ensure_ascii=False)
    key = conn["api_key"]
    if key and key in text:  # belt and braces: the bundle must never carry our key
        text = text.replace(key, "[REDACTED]")
    if out:
        Path(out).write_text(text + "\n")
        success(f"wrote {out}")
    else:
        write_out(text + "\n")
