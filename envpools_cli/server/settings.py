"""Settings of one local backend instance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from envpools_cli import paths
from envpools_cli.server.sandbox.limits import DEFAULT_LIMITS, DEFAULT_MAXIMA, Limits, parse_limits

__all__ = ["ServerSettings", "agents_dir_for"]


def agents_dir_for(data_dir: Path) -> Path:
    """Where agent CLIs are installed for a backend: ``ENVPOOLS_AGENTS_DIR``, else its data dir."""
    value = os.environ.get("ENVPOOLS_AGENTS_DIR")
    return Path(value) if value else data_dir / "agents"


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@dataclass
class ServerSettings:
    """Where the backend keeps its state and how it schedules and streams.

    ``data_dir`` holds ``envpools.db`` and one folder per rollout under ``trials/``.
    """

    data_dir: Path = field(default_factory=lambda: paths.data_dir() / "local")
    heartbeat_sec: float = 15.0
    default_concurrency: int = 2
    max_running: int = field(default_factory=lambda: max(2, _cpu_count()))
    default_agent_timeout_sec: int = 600
    default_verifier_timeout_sec: int = 600
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
            settings.max_running = int(value)
        if value := os.environ.get("ENVPOOLS_SANDBOX_UID"):
            settings.sandbox_uid = int(value)
        if value := os.environ.get("ENVPOOLS_MIN_FREE_MB"):
            settings.min_free_mb = int(value)
        if value := os.environ.get("ENVPOOLS_MAX_REQUEST_MB"):
            settings.max_request_bytes = int(float(value) * 1024 * 1024)
        settings.limits = parse_limits(os.environ.get("ENVPOOLS_SANDBOX_LIMITS"), settings.limits)
        settings.limit_maxima = parse_limits(
            os.environ.get("ENVPOOLS_SANDBOX_MAX_LIMITS"), settings.limit_maxima
        )
        return settings
