"""envpools demo: the whole product on this machine, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import EXIT_NOT_SUCCEEDED
from envpools_cli.commands._options import output_format
from envpools_cli.runtime import runtime

DEMO_POOL = "envpools-demo"
DEMO_TASK = "fix-failing-test"


def demo_dir() -> Path:
    """Where the demo keeps what it downloads: under the data dir, not wherever the user is."""
    from envpools_cli import paths

    return paths.data_dir() / "demo"


def demo(
    agent: Annotated[
        str,
        typer.Option(
            "--agent",
            "-a",
            help="Harness: oracle (no API key needed), nop, or an agent CLI "
            "such as codex once its credential is stored.",
        ),
    ] = "oracle",
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to download the artifacts (default: <data dir>/demo/<rollout id>, "
            "never the current directory).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to follow.")] = 900.0,
) -> None:
    """Start the local backend if needed, run a rollout on the bundled task, follow it
    live, show its usage and download its artifacts.

    Example: envpools demo --agent oracle
    """
    from envpools_cli import client as ep
    from envpools_cli import local_backend
    from envpools_cli.downloads import download_files
    from envpools_cli.local_backend import LOCAL_PROFILE
    from envpools_cli.output.local_backend import show_started
    from envpools_cli.output.messages import info, success, warn
    from envpools_cli.output.usage import print_usage
    from envpools_cli.server.services.placement import examples_dir
    from envpools_cli.watch import follow_to_end

    state = local_backend.running_state()
    fmt = output_format(None, False, False)
    if state is None:
        started = local_backend.start(
            host="127.0.0.1",
            port=8000,
            data_dir=None,
            timeout=60.0,
            sandbox=None,
            info=info,
            warn=warn,
        )
        url = str(started.state["url"])
        show_started(
            started.record(), (local_backend.healthy(url) or {}) if fmt == "table" else {}, fmt
        )
    else:
        local_backend.ensure_local_key(LOCAL_PROFILE, Path(state["data_dir"]), warn=warn)
        local_backend.record_profile(str(state["url"]))
    runtime.use_profile(LOCAL_PROFILE)
    conn = runtime.conn()

    task_dir = examples_dir() / DEMO_TASK
    try:
        pool = ep.get_pool(DEMO_POOL, **conn)
    except ep.NotFoundError:
        pool = ep.create_pool(
            request={
                "pool_id": DEMO_POOL,
                "pool_type": "sandbox",
                "concurrency": 2,
                "tags": ["demo"],
                "tasks": [ep.PoolTask.from_local(DEMO_TASK, str(task_dir)).model_dump()],
            },
            **conn,
        )
        info(f"created pool {DEMO_POOL} with the bundled task {DEMO_TASK}")
    if not any(t.get("task_id") == DEMO_TASK for t in pool.get("tasks") or []):
        ep.create_pool_task(
            DEMO_POOL, request=ep.PoolTask.from_local(DEMO_TASK, str(task_dir)), **conn
        )
    agent_spec: dict[str, Any] = {"harness": agent}
    if model:
        agent_spec["model_id"] = model
    rollout = ep.create_rollout(
        request={
            "task_ref": {"dataset": "envpools-examples", "task_id": DEMO_TASK},
            "agent": agent_spec,
            "pool_id": DEMO_POOL,
            "task_app_id": "",
            "timeouts": {"agent_sec": 600, "verifier_sec": 120},
            "metadata": {"source": "envpools demo"},
        },
        **conn,
    )
    rollout_id = str(rollout["rollout_id"])
    success(f"launched rollout {rollout_id} ({agent} on {DEMO_TASK}); following it live")
    code = follow_to_end(rollout_id, conn, timeout=timeout, exit_status=False)
    if code:
        raise typer.Exit(code)
    final = ep.get_rollout(rollout_id, **conn)
    print_usage(ep.get_rollout_usage(rollout_id, **conn))
    target = directory or demo_dir() / rollout_id
    download_files(rollout_id, target, conn, overwrite=True)
    info(
        f"artifacts in {target}; "
        f"next: envpools -p {LOCAL_PROFILE} rollouts get {rollout_id}; "
        f"envpools -p {LOCAL_PROFILE} rollouts tail {rollout_id}; envpools local down"
    )
    from envpools_cli.models import RolloutStatus  # pydantic: not at import time

    if not RolloutStatus.succeeded(final.get("status")):
        raise typer.Exit(EXIT_NOT_SUCCEEDED)
