"""``POST /local/v1/agents/check``: the organisation's agents, each tried with one real
model call through its stored key and base URL (``agents/probe.py``).

A local-backend endpoint: the hosted API has no such path (it lives under ``/local``,
which the hosted service does not serve, so it cannot clash with anything there).
"""

from __future__ import annotations

from typing import Any

from envpools_cli.models import HARNESS_ALIASES
from envpools_cli.server.agents import harness_classes
from envpools_cli.server.agents.probe import CHECK_TIMEOUT_SEC, check_agents
from envpools_cli.server.context import ServerContext
from envpools_cli.server.errors import ApiError
from envpools_cli.server.state.vault import VaultError

__all__ = ["CHECK_PATH", "agents_check"]

CHECK_PATH = "/local/v1/agents/check"


def agents_check(
    ctx: ServerContext, org_id: str, agent: str | None, model_id: str | None
) -> dict[str, Any]:
    """``{"agents": [verdict, ...]}`` for every agent that calls a provider, or ``agent``."""
    classes = {n: c for n, c in harness_classes(ctx.agents.agents_dir).items() if c.binary}
    if agent is not None:
        name = HARNESS_ALIASES.get(agent, agent)
        if name not in classes:
            raise ApiError(
                404,
                "not_found",
                f"no agent {agent!r} that calls a provider; agents: {sorted(classes)}",
            )
        classes = {name: classes[name]}
    try:
        credentials = ctx.store.credential_values(org_id)
    except VaultError as exc:
        raise ApiError(500, "credentials_unreadable", f"stored credentials: {exc}") from None
    # No longer than a rollout's call may wait for its answer (ENVPOOLS_PROVIDER_TIMEOUT_SEC).
    timeout = min(CHECK_TIMEOUT_SEC, ctx.settings.provider_timeout_sec)
    return {"agents": check_agents(classes, credentials, model_id, timeout=timeout)}
