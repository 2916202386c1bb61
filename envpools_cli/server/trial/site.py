"""Where trials run: one machine's sandbox driver, agent CLIs, sandbox uids and trial folders.

The backend has one for its own machine (``ServerContext.site``); a Ray worker node makes
its own the first time a trial lands there, with the driver *that node* can run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
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
    make_driver,
)

__all__ = ["TrialSite", "private_folder"]

log = logging.getLogger("envpools.server.site")

_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def private_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask


@dataclass
class TrialSite:
    driver: SandboxDriver
    trials_dir: Path
    owner: str
    """What labels this site's containers (one value per data folder)."""
    agents_path: Path
    driver_warning: str | None = None
    driver_note: str | None = None
    """Why ``auto`` did not pick the container driver."""
    tool_paths: list[Path] = field(default_factory=list)
    sandbox_users: SandboxUsers = field(default_factory=SandboxUsers)
    node: dict[str, Any] = field(default_factory=dict)
    """The machine, as a rollout records it: ``{"node_id", "name", "address"}``."""
    choice: str = "auto"
    """The sandbox setting the driver was chosen by (``auto`` may fall back per rollout)."""
    agents: AgentTools = field(init=False)
    _fallback: tuple[TrialSite | None, str] | None = field(default=None, init=False, repr=False)
    _fallback_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.agents = AgentTools(
            self.agents_path,
            self.tool_paths,
            self.driver,
            users=(self.take_sandbox_user, self.release_sandbox_user),
        )
        if not self.node:
            self.node = {"node_id": "local", "name": socket.gethostname()}

    @classmethod
    def create(
        cls,
        *,
        sandbox: str,
        data_dir: Path,
        agents_path: Path,
        sandbox_uid: int | None = None,
        node: dict[str, Any] | None = None,
    ) -> TrialSite:
        """This machine's site: ``data_dir`` holds ``trials/`` (and the image workspaces)."""
        trials = data_dir / "trials"
        for folder in (data_dir, trials):
            private_folder(folder)
        choice = make_any_driver(
            sandbox, owner=owner_id(data_dir), cache_dir=data_dir / "image-workspaces"
        )
        if choice.warning:
            log.warning("%s", choice.warning)
        tools = [Path(p) for p in os.environ.get("ENVPOOLS_TOOL_PATH", "").split(os.pathsep) if p]
        return cls(
            driver=choice.driver,
            trials_dir=trials,
            owner=owner_id(data_dir),
            agents_path=agents_path,
            driver_warning=choice.warning,
            driver_note=choice.note,
            tool_paths=tools,
            sandbox_users=SandboxUsers(sandbox_uid or DEFAULT_SANDBOX_UID),
            node=node or {},
            choice=sandbox,
        )

    @property
    def may_fall_back(self) -> bool:
        """``auto`` chose the container driver: a rollout whose image cannot be had may run
        with bubblewrap instead (``fallback``). A driver asked for by name is kept."""
        return self.choice == "auto" and self.driver.name == "container"

    def fallback(self) -> tuple[TrialSite | None, str]:
        """This machine with bubblewrap, for rollouts whose image cannot be had: (the site,
        "") or (None, why not). Made once, on the first rollout that needs it."""
        if not self.may_fall_back:
            return None, f"the sandbox driver was set to {self.choice}"
        with self._fallback_lock:
            if self._fallback is None:
                try:
                    driver, warning = make_driver("bwrap")
                except RuntimeError as exc:
                    self._fallback = (None, str(exc))
                else:
                    site = TrialSite(
                        driver=driver,
                        trials_dir=self.trials_dir,
                        owner=self.owner,
                        agents_path=self.agents_path,
                        driver_warning=warning,
                        tool_paths=self.tool_paths,
                        sandbox_users=self.sandbox_users,
                        node=self.node,
                        choice="bwrap",
                    )
                    self._fallback = (site, "")
            return self._fallback

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

    def trial_dir(self, rollout_id: str) -> Path:
        return self.trials_dir / rollout_id
