"""Everything a running local backend shares: settings, store, events, its trial site, prices."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli.server.agents.installs import AgentTools
from envpools_cli.server.sandbox.drivers import SandboxDriver, SandboxUser
from envpools_cli.server.settings import ServerSettings
from envpools_cli.server.state.events import EventBus
from envpools_cli.server.state.frames import is_terminal
from envpools_cli.server.state.store import Store
from envpools_cli.server.state.writer import EventWriter
from envpools_cli.server.trial.site import TrialSite
from envpools_cli.server.trial.usage import load_prices

__all__ = ["ServerContext"]

log = logging.getLogger("envpools.server")


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

    def __post_init__(self) -> None:
        self.writer = EventWriter(self.store, self.bus)

    @classmethod
    def create(cls, settings: ServerSettings) -> ServerContext:
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
        }
        if self.site.driver_note:
            found["container_unavailable"] = self.site.driver_note
        if details := driver.describe():
            found["details"] = details
        return found

    def trial_dir(self, rollout_id: str) -> Path:
        return self.settings.trials_dir / rollout_id
