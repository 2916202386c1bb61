"""The background local backend as a process: start, find, check, stop.

Its address lives in a state file (written by ``server.serve`` once it listens), its output
in a log file, its data under the data dir. Nothing here prints: notes and warnings go to
the callbacks a caller hands in, so ``envpools local`` and ``envpools demo`` say them alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envpools_cli.cli_errors import CLIError, UsageProblem
from envpools_cli.local_settings import LocalSettings

__all__ = [
    "LOCAL_PROFILE",
    "SANDBOXES",
    "ServeOptions",
    "Started",
    "default_data_dir",
    "ensure_local_key",
    "healthy",
    "log_file",
    "open_store",
    "record_profile",
    "running_state",
    "sandbox_choice",
    "start",
    "state_file",
    "stop",
]

LOCAL_PROFILE = "local"
SANDBOXES = ("auto", "container", "bwrap", "process")

Say = Callable[[str], None]


def _silent(_: str) -> None:
    pass


def sandbox_choice(value: str | None) -> str | None:
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


def healthy(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The backend's ``/healthz`` body, or None when it does not answer 200."""
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
    return state if healthy(str(state.get("url"))) is not None else None


def open_store(data_dir: Path) -> Any:
    """The backend's database under ``data_dir`` (the caller closes it)."""
    from envpools_cli.server.state.store import Store

    return Store(data_dir / "envpools.db")


def ensure_local_key(profile: str, data_dir: Path, *, warn: Say = _silent) -> tuple[str, bool]:
    """A working key for ``profile``: the stored one if the backend knows it, else a new one.

    ``(where it is kept, whether it is new)``.
    """
    from envpools_cli import keystore
    from envpools_cli.server.serve import ensure_default_org

    store = open_store(data_dir)
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


def record_profile(url: str) -> bool:
    """Point the local profile at ``url``; make it current on a fresh machine."""
    from envpools_cli import keystore
    from envpools_cli.config import load_config, save_profile

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


@dataclass(frozen=True)
class ServeOptions:
    """How the backend schedules, as ``local up`` passes it on to ``local serve``."""

    max_running: int | None = None
    cpu_overcommit: float | None = None
    executor: str | None = None
    ray_address: str | None = None
    limits: str | None = None
    """Sandbox limits, ``NAME=N,...`` (``--limits``)."""

    def flags(self) -> list[str]:
        found: list[str] = []
        if self.limits is not None:
            found += ["--limits", self.limits]
        if self.executor is not None:
            found += ["--executor", self.executor]
        if self.ray_address is not None:
            found += ["--ray-address", self.ray_address]
        if self.max_running is not None:
            found += ["--max-running", str(self.max_running)]
        if self.cpu_overcommit is not None:
            found += ["--cpu-overcommit", f"{self.cpu_overcommit:g}"]
        return found

    def conflicts(self, health: dict[str, Any]) -> list[str]:
        """What a running backend does differently from these options."""
        scheduling = health.get("scheduling") or {}
        found = []
        for name, flag in (
            ("max_running", "--max-running"),
            ("cpu_overcommit", "--cpu-overcommit"),
        ):
            wanted = getattr(self, name)
            if wanted is not None and scheduling.get(name) != wanted:
                found.append(f"{flag} {scheduling.get(name)}")
        if self.executor is not None and scheduling.get("executor") != self.executor:
            found.append(f"--executor {scheduling.get('executor')}")
        running = health.get("limits") or {}
        for item in (self.limits or "").split(","):
            name, _, value = item.strip().partition("=")
            if name and value.strip().isdigit() and running.get(name) != int(value):
                found.append(f"limit {name}={running.get(name)}")
        return found

    @classmethod
    def of(cls, settings: LocalSettings) -> ServeOptions:
        return cls(
            settings.max_running,
            settings.cpu_overcommit,
            settings.executor,
            settings.ray_address,
            settings.limits,
        )


@dataclass
class Started:
    """What ``start`` found or made: the backend's record, its data dir, key and profile."""

    state: dict[str, Any]
    data_dir: Path
    started: bool
    key_stored_in: str
    new_key: bool
    current_profile: bool
    remembered: dict[str, Any]
    """The settings ``local up`` remembers now (``local_settings``)."""

    def record(self) -> dict[str, Any]:
        """The machine-readable result of ``envpools local up``."""
        return {
            "running": True,
            "url": self.state["url"],
            "pid": self.state["pid"],
            "data_dir": str(self.data_dir),
            "profile": LOCAL_PROFILE,
            "key_stored_in": self.key_stored_in,
            "new_key": self.new_key,
            "started": self.started,
            "current_profile": self.current_profile,
            "remembered": self.remembered,
        }


def start(
    *,
    host: str,
    port: int,
    data_dir: Path | None,
    timeout: float,
    sandbox: str | None,
    options: ServeOptions | None = None,
    info: Say = _silent,
    warn: Say = _silent,
    remember: bool = False,
    reset: bool = False,
) -> Started:
    """The backend running (started in the background unless it already is), with a key
    and the 'local' profile pointing at it.

    A backend started here gets the remembered settings (``local_settings``) where neither
    ``sandbox``/``options`` nor an ``ENVPOOLS_*`` variable sets them; with ``remember``, what
    was given is remembered (over what was) once the backend runs; ``reset`` forgets what
    was remembered first (once the flags are known to be good).
    """
    from envpools_cli import local_settings

    choice = sandbox_choice(sandbox)
    options = options or ServeOptions()
    given = LocalSettings(
        sandbox=choice,
        limits=options.limits,
        max_running=options.max_running,
        cpu_overcommit=options.cpu_overcommit,
        executor=options.executor,
        ray_address=options.ray_address,
    )
    given.check("envpools local up", stored=False)
    if reset and local_settings.forget():
        info(f"forgot the remembered settings ({local_settings.settings_file()})")
    stored = local_settings.load()
    directory = data_dir or default_data_dir()
    state = running_state()
    started = state is None
    if state is None:
        wanted = given.over(stored.without_environment())
        state = _spawn(
            host, port, directory, timeout, wanted.sandbox, ServeOptions.of(wanted), info
        )
    else:
        directory = Path(state.get("data_dir") or directory)
        health = healthy(str(state["url"])) or {}
        running = health.get("sandbox")
        if choice not in (None, "auto", running):
            raise CLIError(
                f"a local backend is already running at {state['url']} with the {running} "
                f"sandbox, not {choice}",
                hint=f"stop it first: envpools local down && envpools local up --sandbox {choice}",
            )
        if differs := options.conflicts(health):
            raise CLIError(
                f"a local backend is already running at {state['url']} with {', '.join(differs)}",
                hint="stop it first (envpools local down), then start it with the new options",
            )
    if remember and given.values():
        stored = given.over(stored)
        local_settings.save(stored)
    where, fresh = ensure_local_key(LOCAL_PROFILE, directory, warn=warn)
    made_current = record_profile(str(state["url"]))
    return Started(state, directory, started, where, fresh, made_current, stored.values())


def _spawn(
    host: str,
    port: int,
    data_dir: Path,
    timeout: float,
    sandbox: str | None,
    options: ServeOptions,
    info: Say,
) -> dict[str, Any]:
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
        *options.flags(),
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
            if state.get("pid") == process.pid and healthy(str(state["url"])):
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


def stop(timeout: float) -> int | None:
    """Stop the recorded backend: SIGTERM, SIGKILL after ``timeout`` seconds.

    The pid it stopped, or None when none was running (a stale record is removed).
    """
    try:
        state = json.loads(state_file().read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid = int(state.get("pid", -1))
    if not _alive(pid):
        state_file().unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    state_file().unlink(missing_ok=True)
    return pid
