"""Everything a running local backend shares: settings, store, events, sandbox, prices."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli.server.agents.installs import AgentTools
from envpools_cli.server.sandbox.container import make_any_driver, owner_id
from envpools_cli.server.sandbox.drivers import (
    DEFAULT_SANDBOX_UID,
    SandboxDriver,
    SandboxUser,
    SandboxUsers,
    backend_user,
)
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
from envpools_cli.server.trial.usage import load_prices

__all__ = ["ServerContext"]

log = logging.getLogger("envpools.server")

_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def _fit_open_files(settings: ServerSettings) -> None:
    """Raise the open-files soft limit to the hard one, and fit what runs under it: the
    sandboxes' own limit, and how many rollouts run at once (said when it is too low)."""
    files = plan_open_files(*raise_open_files(), settings.max_running)
    if files.warning:
        log.warning("%s", files.warning)
    settings.max_running = files.max_running
    hard = open_files_hard_limit()
    settings.limits = fit_open_files(settings.limits, hard)
    settings.limit_maxima = fit_open_files(settings.limit_maxima, hard)


@dataclass
class ServerContext:
    settings: ServerSettings
    store: Store
    bus: EventBus
    driver: SandboxDriver
    driver_warning: str | None
    prices: dict[str, Any]
    tool_paths: list[Path] = field(default_factory=list)
    sandbox_users: SandboxUsers = field(default_factory=SandboxUsers)
    driver_note: str | None = None
    """Why ``auto`` did not pick the container driver."""
    agents: AgentTools = field(init=False)
    ends: TerminalWrites = field(init=False)
    """Rollout ends the store has not taken yet (``state/terminal.py``)."""

    def __post_init__(self) -> None:
        self.ends = TerminalWrites(self.store, self.bus)
        self.agents = AgentTools(
            self.settings.agents_path,
            self.tool_paths,
            self.driver,
            users=(self.take_sandbox_user, self.release_sandbox_user),
        )

    @classmethod
    def create(cls, settings: ServerSettings) -> ServerContext:
        _fit_open_files(settings)
        for folder in (settings.data_dir, settings.trials_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
        choice = make_any_driver(
            settings.sandbox,
            owner=owner_id(settings.data_dir),
            cache_dir=settings.data_dir / "image-workspaces",
        )
        driver, warning = choice.driver, choice.warning
        users = SandboxUsers(settings.sandbox_uid or DEFAULT_SANDBOX_UID)
        if warning:
            log.warning("%s", warning)
        tools = [Path(p) for p in os.environ.get("ENVPOOLS_TOOL_PATH", "").split(os.pathsep) if p]
        return cls(
            settings=settings,
            store=Store(settings.db_path),
            bus=EventBus(),
            driver=driver,
            driver_warning=warning,
            driver_note=choice.note,
            prices=load_prices(settings.price_table),
            tool_paths=tools,
            sandbox_users=users,
        )

    @property
    def search_path(self) -> str:
        """PATH inside the sandbox: the host's /usr plus the configured tool folders."""
        if self.driver.isolated:
            return os.pathsep.join([*map(str, self.tool_paths), _SANDBOX_PATH])
        return os.pathsep.join([*map(str, self.tool_paths), os.environ.get("PATH", "")])

    def take_sandbox_user(self) -> SandboxUser:
        """Who one rollout's commands run as: a uid of its own where the driver can."""
        return self.sandbox_users.take() if self.driver.switches_user else backend_user()

    def release_sandbox_user(self, user: SandboxUser) -> None:
        if self.driver.switches_user:
            self.sandbox_users.release(user)

    def publish(self, rollout_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        envelope, frame = self.store.append_event_frame(rollout_id, event, data)
        seq, terminal = envelope["seq"], is_terminal(event, data)
        self.store.after_commit(lambda: self.bus.notify(rollout_id, seq, frame, terminal))
        return envelope

    @property
    def owner(self) -> str:
        """What labels this backend's containers (one value per data folder)."""
        return owner_id(self.settings.data_dir)

    def sandbox_report(self) -> dict[str, Any]:
        """The sandbox as status and capabilities show it: the driver and how it was chosen."""
        found: dict[str, Any] = {
            "driver": self.driver.name,
            "requested": self.settings.sandbox,
            "isolated": self.driver.isolated,
            "warning": self.driver_warning,
        }
        if self.driver_note:
            found["container_unavailable"] = self.driver_note
        if details := self.driver.describe():
            found["details"] = details
        return found

    def trial_dir(self, rollout_id: str) -> Path:
        return self.settings.trials_dir / rollout_id
