"""Everything a running local backend shares: settings, store, events, its trial site, prices."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli.server.agents.installs import AgentTools
from envpools_cli.server.sandbox.drivers import SandboxDriver, SandboxUser
from envpools_cli.server.sandbox.limits import (
    fit_open_files,
    open_files_hard_limit,
    plan_open_files,
    raise_open_files,
)
from envpools_cli.server.settings import ServerSettings
from envpools_cli.server.state.events import EventBus
from envpools_cli.server.state.frames import is_terminal
from envpools_cli.server.state.store import Store
from envpools_cli.server.state.terminal import TerminalWrites
from envpools_cli.server.state.writer import EventWriter
from envpools_cli.server.trial.site import TrialSite
from envpools_cli.server.trial.usage import load_prices

__all__ = ["ServerContext"]

log = logging.getLogger("envpools.server")


def _fit_open_files(settings: ServerSettings) -> None:
    """Raise the open-files soft limit to the hard one and fit what runs under it: the
    sandboxes' own limit, and ``max_running`` when one is set (said when it is too low).
    Without a cap, admission counts the limit itself (``scheduling/admission.py``); raises
    ``OpenFilesTooLow`` when not even one rollout fits."""
    files = plan_open_files(*raise_open_files(), settings.max_running or 1)
    if files.warning:
        log.warning("%s", files.warning)
    if settings.max_running is not None:
        settings.max_running = files.max_running
    hard = open_files_hard_limit()
    settings.limits = fit_open_files(settings.limits, hard)
    settings.limit_maxima = fit_open_files(settings.limit_maxima, hard)


@dataclass
class ServerContext:
    settings: ServerSettings
    store: Store
    bus: EventBus
    site: TrialSite
    """This machine: its sandbox driver, agent CLIs and trial folders."""
    prices: dict[str, Any]
    writer: EventWriter = field(init=False)
    """Running trials' events, many to a transaction (``state/writer.py``)."""
    ends: TerminalWrites = field(init=False)
    """Rollout ends the store has not taken yet (``state/terminal.py``)."""

    def __post_init__(self) -> None:
        self.writer = EventWriter(self.store, self.bus)
        self.ends = TerminalWrites(self.store, self.bus)

    @classmethod
    def create(cls, settings: ServerSettings) -> ServerContext:
        _fit_open_files(settings)
        site = TrialSite.create(
            sandbox=settings.sandbox,
            data_dir=settings.data_dir,
            agents_path=settings.agents_path,
            sandbox_uid=settings.sandbox_uid,
        )
        return cls(
            settings=settings,
            store=Store(settings.db_path),
            bus=EventBus(),
            site=site,
            prices=load_prices(settings.price_table),
        )

    @property
    def driver(self) -> SandboxDriver:
        return self.site.driver

    @property
    def driver_warning(self) -> str | None:
        return self.site.driver_warning

    @property
    def agents(self) -> AgentTools:
        return self.site.agents

    @property
    def search_path(self) -> str:
        return self.site.search_path

    def take_sandbox_user(self) -> SandboxUser:
        return self.site.take_sandbox_user()

    def release_sandbox_user(self, user: SandboxUser) -> None:
        self.site.release_sandbox_user(user)

    def publish(self, rollout_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        envelope, frame = self.store.append_event_frame(rollout_id, event, data)
        seq, terminal = envelope["seq"], is_terminal(event, data)
        self.store.after_commit(lambda: self.bus.notify(rollout_id, seq, frame, terminal))
        return envelope

    @property
    def owner(self) -> str:
        """What labels this backend's containers (one value per data folder)."""
        return self.site.owner

    def sandbox_report(self) -> dict[str, Any]:
        """The sandbox as status and capabilities show it: the driver and how it was chosen."""
        driver = self.site.driver
        found: dict[str, Any] = {
            "driver": driver.name,
            "requested": self.settings.sandbox,
            "isolated": driver.isolated,
            "warning": self.site.driver_warning,
            "memory_limit": driver.memory_limit(),
        }
        if self.site.driver_note:
            found["container_unavailable"] = self.site.driver_note
        if self.site.may_fall_back:
            found["fallback"] = "bwrap, for a rollout whose image cannot be had"
        if details := driver.describe():
            found["details"] = details
        return found

    def trial_dir(self, rollout_id: str) -> Path:
        return self.settings.trials_dir / rollout_id
