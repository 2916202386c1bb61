"""Settings of one local backend instance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from envpools_cli import paths
from envpools_cli.server.sandbox.limits import DEFAULT_LIMITS, DEFAULT_MAXIMA, Limits, parse_limits
from envpools_cli.server.sandbox.provider_watch import DEFAULT_PROVIDER_TIMEOUT_SEC

__all__ = ["EXECUTORS", "ServerSettings", "SettingError", "agents_dir_for"]

EXECUTORS = ("local", "ray")
DEFAULT_CPU_OVERCOMMIT = 8.0
DEFAULT_MEMORY_FRACTION = 0.8


class SettingError(ValueError):
    """A setting (flag or ``ENVPOOLS_*`` variable) the backend cannot use; says which."""


def agents_dir_for(data_dir: Path) -> Path:
    """Where agent CLIs are installed for a backend: ``ENVPOOLS_AGENTS_DIR``, else its data dir."""
    value = os.environ.get("ENVPOOLS_AGENTS_DIR")
    return Path(value) if value else data_dir / "agents"


def _number(name: str, text: str, *, integer: bool = False, most: float | None = None) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise SettingError(f"{name}={text!r}: expected {kind} above 0") from None
    if not value > 0 or value != value or (most is not None and value > most):
        bound = f" and at most {most:g}" if most is not None else ""
        raise SettingError(f"{name}={text!r}: expected a value above 0{bound}")
    return value


@dataclass
class ServerSettings:
    """Where the backend keeps its state and how it schedules and streams.

    ``data_dir`` holds ``envpools.db`` and one folder per rollout under ``trials/``.
    """

    data_dir: Path = field(default_factory=lambda: paths.data_dir() / "local")
    heartbeat_sec: float = 15.0
    default_concurrency: int = 2
    """Rollouts at once of a pool that sets no ``concurrency`` (and of ad-hoc rollouts)."""
    max_running: int | None = None
    """Rollouts running at once on top of the resource accounting (None: resources only)."""
    cpu_overcommit: float = DEFAULT_CPU_OVERCOMMIT
    """CPUs reserved per core: agents mostly wait on their provider."""
    memory_fraction: float = DEFAULT_MEMORY_FRACTION
    """The share of this machine's memory that running rollouts may reserve."""
    executor: str = "local"
    """Where trials run: ``local`` (threads on this machine) or ``ray`` (a Ray cluster)."""
    ray_address: str | None = None
    """The Ray cluster (``HOST:PORT`` of its head, or ``auto``) for ``executor = "ray"``."""
    ray_resource: str = "sandbox_slot"
    """The custom per-node resource a Ray trial takes one of: nodes that offer it run trials."""
    default_agent_timeout_sec: int = 600
    default_verifier_timeout_sec: int = 600
    provider_timeout_sec: float = DEFAULT_PROVIDER_TIMEOUT_SEC
    """How long an agent's LLM provider may keep a call without response headers, or a
    stream silent, before the gateway ends the rollout (``provider_timeout``);
    ``ENVPOOLS_PROVIDER_TIMEOUT_SEC``."""
    sandbox: str = field(default_factory=lambda: os.environ.get("ENVPOOLS_SANDBOX") or "auto")
    """``auto`` (a working container engine, else bwrap, else plain processes),
    ``container``, ``bwrap`` or ``process``; default ``ENVPOOLS_SANDBOX``."""
    price_table: Path | None = None
    event_batch: int = 2000
    """Events per read and per ASGI message of a stream (frames are ~200 bytes)."""
    agents_dir: Path | None = None
    """Where ``envpools agents install`` puts the agent CLIs (default ``data_dir/agents``)."""
    sandbox_uid: int | None = None
    """Host uid/gid a root backend runs sandboxes as (None: ``DEFAULT_SANDBOX_UID``)."""
    limits: Limits = DEFAULT_LIMITS
    """What a sandbox gets unless its task asks for more or less."""
    limit_maxima: Limits = DEFAULT_MAXIMA
    """The most a task may ask for."""
    finish_timeout_sec: float = 300.0
    """Collecting artifacts (diff, tarball, index) after the sandbox has stopped."""
    cancel_grace_sec: float = 10.0
    """How long ``cancel`` waits for a rollout to stop before ending it regardless."""
    min_free_mb: int = 128
    """Free space kept in the data folder's filesystem for running rollouts: below it new
    rollouts are refused (``disk_full``, 507) and queued ones wait (0: no floor)."""
    max_request_bytes: int = 8 * 1024 * 1024
    """The largest request body the API reads (413 beyond); ``ENVPOOLS_MAX_REQUEST_MB``."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "envpools.db"

    @property
    def trials_dir(self) -> Path:
        return self.data_dir / "trials"

    @property
    def agents_path(self) -> Path:
        return self.agents_dir or agents_dir_for(self.data_dir)

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> ServerSettings:
        settings = cls() if data_dir is None else cls(data_dir=data_dir)
        if value := os.environ.get("ENVPOOLS_HEARTBEAT_SEC"):
            settings.heartbeat_sec = float(value)
        if value := os.environ.get("ENVPOOLS_SANDBOX"):
            settings.sandbox = value
        if value := os.environ.get("ENVPOOLS_PRICE_TABLE"):
            settings.price_table = Path(value)
        if value := os.environ.get("ENVPOOLS_MAX_RUNNING"):
            settings.max_running = int(_number("ENVPOOLS_MAX_RUNNING", value, integer=True))
        if value := os.environ.get("ENVPOOLS_CPU_OVERCOMMIT"):
            settings.cpu_overcommit = _number("ENVPOOLS_CPU_OVERCOMMIT", value, most=1000)
        if value := os.environ.get("ENVPOOLS_MEMORY_FRACTION"):
            settings.memory_fraction = _number("ENVPOOLS_MEMORY_FRACTION", value, most=1)
        if value := os.environ.get("ENVPOOLS_EXECUTOR"):
            settings.executor = value
        if value := os.environ.get("ENVPOOLS_RAY_ADDRESS"):
            settings.ray_address = value
        if value := os.environ.get("ENVPOOLS_RAY_RESOURCE"):
            settings.ray_resource = value
        if value := os.environ.get("ENVPOOLS_SANDBOX_UID"):
            settings.sandbox_uid = int(value)
        if value := os.environ.get("ENVPOOLS_MIN_FREE_MB"):
            settings.min_free_mb = int(_number("ENVPOOLS_MIN_FREE_MB", value, integer=True))
        if value := os.environ.get("ENVPOOLS_PROVIDER_TIMEOUT_SEC"):
            settings.provider_timeout_sec = _number(
                "ENVPOOLS_PROVIDER_TIMEOUT_SEC", value, most=24 * 3600
            )
        if value := os.environ.get("ENVPOOLS_MAX_REQUEST_MB"):
            megabytes = _number("ENVPOOLS_MAX_REQUEST_MB", value)
            settings.max_request_bytes = int(megabytes * 1024 * 1024)
        settings.limits = parse_limits(os.environ.get("ENVPOOLS_SANDBOX_LIMITS"), settings.limits)
        settings.limit_maxima = parse_limits(
            os.environ.get("ENVPOOLS_SANDBOX_MAX_LIMITS"), settings.limit_maxima
        )
        return settings

    def check(self) -> None:
        """Raise SettingError for a combination the backend cannot start with."""
        if self.executor not in EXECUTORS:
            choices = ", ".join(EXECUTORS)
            raise SettingError(f"executor {self.executor!r}: expected one of {choices}")
        if self.executor == "ray" and not self.ray_address:
            raise SettingError(
                "the ray executor needs the cluster's address: --ray-address HOST:PORT "
                "(or ENVPOOLS_RAY_ADDRESS; 'auto' finds a cluster started on this machine)"
            )
        if self.max_running is not None and self.max_running < 1:
            raise SettingError(f"max_running {self.max_running}: expected 1 or more")
