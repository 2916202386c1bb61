"""envpools local: the embedded backend on this machine (app.py adds `local images`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import CLIError, UsageProblem
from envpools_cli.commands._options import JsonOpt, OutputOpt, output_format

app = typer.Typer(
    help="The local backend: the whole API on this machine, with real sandboxes.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="API keys of the local backend.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

LOCAL_PROFILE = "local"
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the database and trials live (env ENVPOOLS_DATA_DIR)."),
]
PortOpt = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port (the next free one if taken; 0: any).")
]
HostOpt = Annotated[str, typer.Option("--host", help="Address to bind.")]
SANDBOXES = ("auto", "container", "bwrap", "process")
SandboxOpt = Annotated[
    str | None,
    typer.Option(
        "--sandbox",
        help="auto (a working container engine, else bubblewrap), container, bwrap or "
        "process (env ENVPOOLS_SANDBOX; default auto).",
    ),
]


def _sandbox_choice(value: str | None) -> str | None:
    if value is not None and value not in SANDBOXES:
        raise UsageProblem(f"--sandbox must be one of {', '.join(SANDBOXES)}, not {value!r}")
    return value


def state_file() -> Path:
    from envpools_cli import paths

    return paths.state_dir() / "local-backend.json"


def log_file() -> Path:
    from envpools_cli import paths

    return paths.state_dir() / "local-backend.log"


def default_data_dir() -> Path:
    from envpools_cli import paths

    return paths.data_dir() / "local"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _healthy(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import httpx

    try:
        response = httpx.get(f"{url}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


def running_state() -> dict[str, Any] | None:
    """The running backend's recorded address, or None (a stale record is removed)."""
    target = state_file()
    try:
        state: dict[str, Any] = json.loads(target.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(int(state.get("pid", -1))):
        target.unlink(missing_ok=True)
        return None
    return state if _healthy(str(state.get("url"))) is not None else None


def _store(data_dir: Path) -> Any:
    from envpools_cli.server.store import Store

    return Store(data_dir / "envpools.db")


def ensure_local_key(profile: str, data_dir: Path) -> tuple[str, bool]:
    """A working key for ``profile``: the stored one if the backend knows it, else a new one."""
    from envpools_cli import keystore
    from envpools_cli.output.messages import warn
    from envpools_cli.server.serve import ensure_default_org

    store = _store(data_dir)
    try:
        try:
            existing = keystore.stored_key(profile)
        except keystore.KeyNotFound:
            existing = None
        if existing and store.org_for_key(existing.value) is not None:
            return existing.source, False
        org = ensure_default_org(store)
        key = store.create_key(org.org_id, name=f"envpools local ({profile})")
    finally:
        store.close()
    return keystore.set_key(profile, key, warn=warn), True


@app.command("serve")
def serve(
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    data_dir: DataDirOpt = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    sandbox: SandboxOpt = None,
) -> None:
    """Run the local backend in the foreground (Ctrl-C stops it).

    Example: envpools local serve --port 8000 --sandbox container
    """
    from envpools_cli.server.serve import serve as run_server
    from envpools_cli.server.settings import ServerSettings

    state = running_state() if port != 0 else None
    if state is not None:
        raise CLIError(
            f"a local backend is already running at {state.get('url')} (pid {state.get('pid')})",
            hint="stop it with 'envpools local down'",
        )
    settings = ServerSettings.from_env(data_dir or default_data_dir())
    if choice := _sandbox_choice(sandbox):
        settings.sandbox = choice
    run_server(settings, host=host, port=port, state_file=state_file(), log_level=log_level)


@app.command("up")
def up(
    port: PortOpt = 8000,
    host: HostOpt = "127.0.0.1",
    data_dir: DataDirOpt = None,
    wait_timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for it.")
    ] = 60.0,
    sandbox: SandboxOpt = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local backend in the background and set up the 'local' profile.

    Records the address and a fresh API key (in the keyring) in the 'local' profile, so
    that the next envpools command just works.

    --sandbox picks how rollouts are isolated: container (each task in its own image,
    podman or Docker), bwrap (bubblewrap over the host's tools) or process (none);
    auto, the default, takes the first that works here.

    Example: envpools local up --sandbox container && envpools rollouts list
    """
    from envpools_cli.output.messages import info, success

    fmt = output_format(output, as_json, False)
    choice = _sandbox_choice(sandbox)
    directory = data_dir or default_data_dir()
    state = running_state()
    started = state is None
    if state is None:
        state = _spawn(host, port, directory, wait_timeout, choice)
    else:
        directory = Path(state.get("data_dir") or directory)
        running = (_healthy(str(state["url"])) or {}).get("sandbox")
        if choice not in (None, "auto", running):
            raise CLIError(
                f"a local backend is already running at {state['url']} with the {running} "
                f"sandbox, not {choice}",
                hint=f"stop it first: envpools local down && envpools local up --sandbox {choice}",
            )
    where, fresh = ensure_local_key(LOCAL_PROFILE, directory)
    made_current = record_profile(str(state["url"]))
    result = {
        "running": True,
        "url": state["url"],
        "pid": state["pid"],
        "data_dir": str(directory),
        "profile": LOCAL_PROFILE,
        "key_stored_in": where,
        "new_key": fresh,
        "started": started,
        "current_profile": made_current,
    }
    if fmt != "table":
        from envpools_cli.output.formats import emit_record

        emit_record(result, fmt)
        return
    verb = "started" if started else "already running"
    health = _healthy(str(state["url"])) or {}
    running = health.get("sandbox", "?")
    success(
        f"local backend {verb} at {state['url']} (pid {state['pid']}, "
        f"sandbox: {_describe_sandbox(health)})"
    )
    if note := (health.get("sandbox_detail") or {}).get("container_unavailable"):
        info(f"not the container driver: {note}")
    if running == "process":
        from envpools_cli.output.messages import warn

        warn(
            "bubblewrap is not available: rollouts run as plain processes, without "
            "isolation (apt-get install bubblewrap)"
        )
    info(f"profile {LOCAL_PROFILE!r}: key in {where}; data in {directory}")
    if not made_current:
        info(f"use it with --profile {LOCAL_PROFILE}, or 'envpools config use {LOCAL_PROFILE}'")


def record_profile(url: str) -> bool:
    """Point the local profile at ``url``; make it current on a fresh machine."""
    from envpools_cli import keystore
    from envpools_cli.commands.auth import save_profile
    from envpools_cli.config import load_config

    config = load_config()
    current = config.current_profile
    fresh = current is None and not config.profiles.get("default", {}).get("api_url")
    if fresh:
        try:
            keystore.stored_key("default")
            fresh = False
        except keystore.KeyNotFound:
            pass
    make_current = fresh or current == LOCAL_PROFILE
    save_profile(LOCAL_PROFILE, url, make_current=make_current)
    return make_current


def _describe_sandbox(health: dict[str, Any]) -> str:
    """``container (podman 4.3.1, runc)``, ``bwrap``: the driver and, for containers, its engine."""
    name = str(health.get("sandbox") or "?")
    details = (health.get("sandbox_detail") or {}).get("details") or {}
    if not details.get("engine"):
        return name
    engine = " ".join(str(details[k]) for k in ("engine", "version") if details.get(k))
    return f"{name} ({', '.join(filter(None, [engine, details.get('oci_runtime')]))})"


def _spawn(
    host: str, port: int, data_dir: Path, timeout: float, sandbox: str | None = None
) -> dict[str, Any]:
    from envpools_cli.output.messages import info

    log = log_file()
    log.parent.mkdir(parents=True, exist_ok=True)
    state_file().unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "envpools_cli",
        "local",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *(["--sandbox", sandbox] if sandbox else []),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("ENVPOOLS_API_KEY", "SYNTH_API_KEY"):  # the server needs no client key
        env.pop(name, None)
    info(f"starting the local backend (log: {log})")
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CLIError(
                f"the local backend exited with code {process.returncode}:\n" + _tail(log, 15),
                hint=f"full log: {log}",
            )
        with contextlib.suppress(FileNotFoundError, ValueError):
            state: dict[str, Any] = json.loads(state_file().read_text())
            if state.get("pid") == process.pid and _healthy(str(state["url"])):
                return state
        time.sleep(0.1)
    process.terminate()
    raise CLIError(
        f"the local backend did not answer within {timeout:g}s", hint=f"see its log: {log}"
    )


def _tail(path: Path, lines: int) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(content[-lines:])


@app.command("down")
def down(
    wait_timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before SIGKILL.")
    ] = 15.0,
) -> None:
    """Stop the background local backend.

    Example: envpools local down
    """
    from envpools_cli.output.messages import info, success

    try:
        state = json.loads(state_file().read_text())
    except (FileNotFoundError, ValueError):
        info("the local backend is not running")
        return
    pid = int(state.get("pid", -1))
    if not _alive(pid):
        state_file().unlink(missing_ok=True)
        info("the local backend is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    state_file().unlink(missing_ok=True)
    success(f"stopped the local backend (pid {pid})")


@app.command("status")
def status(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """Is the local backend running, where, with which sandbox. Exits 1 when stopped.

    Example: envpools local status -o json
    """
    from envpools_cli.output.formats import emit_record

    fmt = output_format(output, as_json, False)
    state = running_state()
    if state is None:
        emit_record({"running": False, "log_file": str(log_file())}, fmt)
        raise typer.Exit(1)
    health = _healthy(str(state["url"])) or {}
    record = {
        "running": True,
        "url": state["url"],
        "pid": state["pid"],
        "version": health.get("version"),
        "sandbox": health.get("sandbox"),
        "sandbox_detail": health.get("sandbox_detail"),
        "data_dir": state.get("data_dir"),
        "uptime_sec": round(time.time() - float(state.get("started_at", time.time()))),
        "log_file": str(log_file()),
    }
    if fmt == "table":  # one readable line for people; the structure stays for scripts
        detail = record.pop("sandbox_detail") or {}
        record["sandbox"] = _describe_sandbox(health)
        if note := detail.get("container_unavailable"):
            record["sandbox_note"] = f"not the container driver: {note}"
    emit_record(record, fmt)


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
    from envpools_cli.commands.auth import save_profile
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
    store = _store(directory)
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
