"""What a trial knows of the backend: its inputs, and a reporter to tell it what happens.

A trial may run in a thread of the backend or on another machine (a Ray node), so it
gets everything it needs up front (``TrialInput``: the rollout, the organisation's
credentials, the limits and timeouts) and reports through a ``TrialReporter``: changes
to the rollout document (transitions, the agent's exit code), events, and the end
(final status, terminal event and artifact index in one). The backend applies them;
it stays the only writer of its database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from envpools_cli.server.sandbox.limits import DEFAULT_LIMITS, DEFAULT_MAXIMA, Limits
from envpools_cli.server.sandbox.provider_watch import DEFAULT_PROVIDER_TIMEOUT_SEC

__all__ = ["TrialInput", "TrialReporter", "TrialSettings"]


@dataclass(frozen=True)
class TrialSettings:
    """The backend's settings that shape one trial."""

    limits: Limits = DEFAULT_LIMITS
    limit_maxima: Limits = DEFAULT_MAXIMA
    default_agent_timeout_sec: int = 600
    default_verifier_timeout_sec: int = 600
    finish_timeout_sec: float = 300.0
    provider_timeout_sec: float = DEFAULT_PROVIDER_TIMEOUT_SEC


@dataclass
class TrialInput:
    """Everything a trial starts from (plain data: it can be sent to another machine)."""

    rollout_id: str
    doc: dict[str, Any]
    """The rollout document as the backend had it when the trial was handed over."""
    settings: TrialSettings = field(default_factory=TrialSettings)
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The organisation's stored credentials, name -> (type, value)."""
    credentials_problem: str | None = None
    """Why the stored credentials could not be read (a task that needs none still runs)."""
    prices: dict[str, Any] = field(default_factory=dict)
    record_llm_exchanges: bool = True
    """The pool's ``record_llm_exchanges``: whether the gateway keeps the agent's LLM calls."""


class TrialReporter(Protocol):
    """How a running trial tells the backend what happens to it."""

    def update(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the rollout document (a transition when ``status`` is
        among them); the document as it is now."""
        ...

    def event(self, event: str, data: dict[str, Any]) -> None:
        """Append an event to the rollout's stream."""
        ...

    def artifacts(self, entries: list[dict[str, Any]]) -> None:
        """The artifact index (the files are in the trial folder)."""
        ...

    def end(
        self,
        changes: dict[str, Any],
        data: dict[str, Any],
        entries: list[dict[str, Any]] | None,
        *,
        fallback: dict[str, Any],
    ) -> dict[str, Any]:
        """The end, after every event reported before it: the final changes, the terminal
        lifecycle event ``data`` and the artifact index, as one write that cannot be lost
        (``state/terminal.py``); the document as it ends (``fallback`` merged with
        ``changes`` when the store cannot be read)."""
        ...
