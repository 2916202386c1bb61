"""envpools local: the embedded backend on this machine (app.py adds `local images`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import CLIError, UsageProblem
from envpools_cli.commands._options import JsonOpt, OutputOpt, output_format
from envpools_cli.local_backend import (
    default_data_dir,
    healthy,
    log_file,
    open_store,
    running_state,
    sandbox_choice,
    state_file,
)

app = typer.Typer(
    help="The local backend: the whole API on this machine, with real sandboxes.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="API keys of the local backend.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the database and trials live (env ENVPOOLS_DATA_DIR)."),
]
PortOpt = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port (the next free one if taken; 0: any).")
]
HostOpt = Annotated[str, typer.Option("--host", help="Address to bind.")]
SandboxOpt = Annotated[
    str | None,
    typer.Option(
        "--sandbox",
        help="auto (a working container engine, else bubblewrap), container, bwrap or "
        "process (env ENVPOOLS_SANDBOX; default auto).",
    ),
]
MaxRunningOpt = Annotated[
    int | None,
    typer.Option(
        "--max-running",
        metavar="N",
        min=1,
        help="Rollouts running at once at most, on top of what the machine's cores, memory "
        "and open files allow (env ENVPOOLS_MAX_RUNNING; default: no extra cap).",
        show_default=False,
    ),
]
OvercommitOpt = Annotated[
    float | None,
    typer.Option(
        "--cpu-overcommit",
        metavar="X",
        min=0.01,
        max=1000,
        help="CPUs rollouts may reserve per core: agents mostly wait on their provider "
        "(env ENVPOOLS_CPU_OVERCOMMIT; default 8).",
        show_default=False,
    ),
]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        metavar="NAME",
        help="Where rollouts run: local (this machine) or ray (a Ray cluster; needs "
        "pip install 'envpools[ray]' and --ray-address; env ENVPOOLS_EXECUTOR).",
        show_default=False,
    ),
]
LimitsOpt = Annotated[
    str | None,
    typer.Option(
        "--limits",
        metavar="NAME=N,...",
        help="What each sandbox gets unless its task asks otherwise, e.g. "
        "memory_mb=4096,processes=512 (env ENVPOOLS_SANDBOX_LIMITS; README: Sandbox limits).",
        show_default=False,
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="HOST:PORT",
        help="The Ray cluster's head for --executor ray ('auto': the one started on this "
        "machine; env ENVPOOLS_RAY_ADDRESS).",
        show_default=False,
    ),
]


def _settings(
    data_dir: Path | None,
    sandbox: str | None,
    max_running: int | None,
    cpu_overcommit: float | None,
    executor: str | None = None,
    ray_address: str | None = None,
    limits: str | None = None,
) -> Any:
    """The backend's settings: the environment, then the flags (a bad value: exit 2)."""
    from envpools_cli.server.sandbox.limits import parse_limits
    from envpools_cli.server.settings import ServerSettings, SettingError

    try:
        settings = ServerSettings.from_env(data_dir or default_data_dir())
        try:
            settings.limits = parse_limits(limits, settings.limits)
        except ValueError as exc:
            raise SettingError(f"--limits {exc}") from None
        if choice := sandbox_choice(sandbox):
            settings.sandbox = choice
        if max_running is not None:
            settings.max_running = max_running
        if cpu_overcommit is not None:
            settings.cpu_overcommit = cpu_overcommit
        if executor is not None:
            settings.executor = executor
        if ray_address is not None:
            settings.ray_address = ray_address
        settings.check()
    except SettingError as exc:
        raise UsageProblem(str(exc)) from None
    return settings


@app.command("serve")
def serve(
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    data_dir: DataDirOpt = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    sandbox: SandboxOpt = None,
    max_running: MaxRunningOpt = None,
    cpu_overcommit: OvercommitOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    limits: LimitsOpt = None,
) -> None:
    """Run the local backend in the foreground (Ctrl-C stops it).

    It runs with its flags and ENVPOOLS_* variables only: the settings 'local up'
    remembers are for 'local up'.

    Example: envpools local serve --port 8000 --sandbox container
    """
    from envpools_cli.server.sandbox.limits import OpenFilesTooLow
    from envpools_cli.server.serve import serve as run_server
    from envpools_cli.server.settings import SettingError

    settings = _settings(
        data_dir, sandbox, max_running, cpu_overcommit, executor, ray_address, limits
    )
    state = running_state() if port != 0 else None
    if state is not None:
        raise CLIError(
            f"a local backend is already running at {state.get('url')} (pid {state.get('pid')})",
            hint="stop it with 'envpools local down'",
        )
    try:
        run_server(settings, host=host, port=port, state_file=state_file(), log_level=log_level)
    except (SettingError, OpenFilesTooLow) as exc:  # found while starting
        raise CLIError(str(exc)) from None


@app.command("up")
def up(
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    data_dir: DataDirOpt = None,
    wait_timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for it.")
    ] = 60.0,
    sandbox: SandboxOpt = None,
    max_running: MaxRunningOpt = None,
    cpu_overcommit: OvercommitOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
    limits: LimitsOpt = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Forget the remembered settings first (the flags given now are remembered).",
        ),
    ] = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local backend in the background and set up the 'local' profile.

    Records the address and a fresh API key (in the keyring) in the 'local' profile, so
    that the next envpools command just works.

    --sandbox picks how rollouts are isolated: container (each task in its own image,
    podman or Docker), bwrap (bubblewrap over the host's tools) or process (none);
    auto, the default, takes the first that works here.

    Rollouts run at once as far as the machine allows: each reserves its task's cpus
    and memory_mb, against cores x --cpu-overcommit, most of the memory and the
    open-files limit; --max-running caps the count on top. 'envpools local status'
    shows how many run at once. --executor ray --ray-address HOST:PORT runs them on a
    Ray cluster's nodes instead (README: Running at scale).

    The settings given (--sandbox, --limits, --max-running, --cpu-overcommit,
    --executor, --ray-address) are remembered: a later plain 'local up' (and 'envpools
    demo') uses them until a flag changes one; --reset forgets them. 'local status'
    shows them.

    Example: envpools local up --sandbox bwrap --limits memory_mb=4096
    """
    from envpools_cli import local_backend
    from envpools_cli.output.local_backend import show_started
    from envpools_cli.output.messages import info, warn

    fmt = output_format(output, as_json, False)
    result = local_backend.start(
        host=host,
        port=port,
        data_dir=data_dir,
        timeout=wait_timeout,
        sandbox=sandbox,
        options=local_backend.ServeOptions(
            max_running, cpu_overcommit, executor, ray_address, limits
        ),
        info=info,
        warn=warn,
        remember=True,
        reset=reset,
    )
    url = str(result.state["url"])
    show_started(result.record(), (healthy(url) or {}) if fmt == "table" else {}, fmt)


@app.command("down")
def down(
    wait_timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before SIGKILL.")
    ] = 15.0,
) -> None:
    """Stop the background local backend.

    Example: envpools local down
    """
    from envpools_cli import local_backend
    from envpools_cli.output.messages import info, success

    pid = local_backend.stop(wait_timeout)
    if pid is None:
        info("the local backend is not running")
        return
    success(f"stopped the local backend (pid {pid})")


@app.command("status")
def status(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """Is the local backend running, where, with which sandbox. Exits 1 when stopped.

    Example: envpools local status -o json
    """
    from envpools_cli.output.formats import emit_record
    from envpools_cli.output.local_backend import (
        describe_builds,
        describe_sandbox,
        describe_scheduling,
    )

    fmt = output_format(output, as_json, False)
    remembered = _remembered(fmt)
    state = running_state()
    if state is None:
        emit_record({"running": False, "log_file": str(log_file()), **remembered}, fmt)
        raise typer.Exit(1)
    health = healthy(str(state["url"])) or {}
    record = {
        "running": True,
        "url": state["url"],
        "pid": state["pid"],
        "version": health.get("version"),
        "sandbox": health.get("sandbox"),
        "sandbox_detail": health.get("sandbox_detail"),
        "data_dir": state.get("data_dir"),
        "scheduling": health.get("scheduling"),
        "uptime_sec": round(time.time() - float(state.get("started_at", time.time()))),
        "log_file": str(log_file()),
        **remembered,
    }
    if fmt == "table":  # one readable line for people; the structure stays for scripts
        detail = record.pop("sandbox_detail") or {}
        record["sandbox"] = describe_sandbox(health)
        if builds := describe_builds(health):
            record["builds"] = builds
        record["runs_at_once"] = describe_scheduling(record.pop("scheduling") or {})
        if note := detail.get("container_unavailable"):
            record["sandbox_note"] = f"not the container driver: {note}"
        if fallback := detail.get("fallback"):
            record["sandbox_fallback"] = fallback
        if isinstance(memory := detail.get("memory_limit"), dict):
            record["memory_limit"] = memory.get("how")
    emit_record(record, fmt)


def _remembered(fmt: str) -> dict[str, Any]:
    """What ``local up`` remembers, for ``local status``: the settings and their file (or
    why the file cannot be used: status still answers)."""
    from envpools_cli import local_settings

    target = str(local_settings.settings_file())
    try:
        values = local_settings.load().values()
    except UsageProblem as exc:
        return {"remembered": None, "remembered_file": target, "remembered_error": exc.message}
    if fmt != "table":
        return {"remembered": values, "remembered_file": target}
    if not values:
        return {"remembered": "nothing (local up remembers the flags it is given)"}
    shown = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in values.items())
    return {"remembered": f"{shown} (in {target}; local up --reset forgets)"}


@app.command("logs")
def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show first.")] = 100,
) -> None:
    """Show the background backend's log.

    Example: envpools local logs -f
    """
    from envpools_cli.output.streams import write_out

    path = log_file()
    if not path.is_file():
        raise CLIError(f"no log yet at {path}", hint="start it with 'envpools local up'")
    content = path.read_text(errors="replace").splitlines(keepends=True)
    write_out("".join(content[-lines:] if lines else []))
    if not follow:
        return
    with path.open(errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                write_out(line)
            else:
                time.sleep(0.2)


@keys_app.command("create")
def keys_create(
    plan: Annotated[
        str,
        typer.Option(
            "--plan", help="Plan of the organisation: free, trial, pro, team, enterprise, demo."
        ),
    ] = "pro",
    org: Annotated[
        str | None,
        typer.Option("--org", help="Organisation name (created if new; default: one per plan)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--save-profile", help="Store the key in this profile (default: local-<plan>)."
        ),
    ] = None,
    show: Annotated[
        bool, typer.Option("--show", help="Print the key on stdout once instead of storing it.")
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an organisation (with a plan) and an API key for it.

    By default the key goes to the keyring under a profile pointing at the running
    local backend; with --show it is printed once and kept nowhere.

    Example: envpools local keys create --plan free && envpools -p local-free pools list
    """
    from envpools_cli import keystore
    from envpools_cli.config import save_profile
    from envpools_cli.output.messages import success, warn
    from envpools_cli.output.streams import write_out

    plans = ("free", "trial", "pro", "team", "enterprise", "demo")
    if plan not in plans:
        raise UsageProblem(f"--plan must be one of {', '.join(plans)}")
    state = running_state()
    directory = (
        Path(state["data_dir"])
        if state and state.get("data_dir")
        else (data_dir or default_data_dir())
    )
    store = open_store(directory)
    try:
        name = org or f"local-{plan}"
        row = store.db.execute("SELECT org_id FROM orgs WHERE name = ?", (name,)).fetchone()
        org_obj = store.get_org(row["org_id"]) if row else store.create_org(name, plan)
        if org_obj.plan != plan:
            store.set_plan(org_obj.org_id, plan)
        key = store.create_key(org_obj.org_id, name="envpools local keys create")
    finally:
        store.close()
    if show:
        write_out(key + "\n")
        return
    target = profile or f"local-{plan}"
    where = keystore.set_key(target, key, warn=warn)
    if state:
        save_profile(target, str(state["url"]), make_current=False)
    success(
        f"created a key for {name} (plan {plan}): {keystore.mask(key)}, stored in {where} "
        f"for profile {target!r}"
    )
