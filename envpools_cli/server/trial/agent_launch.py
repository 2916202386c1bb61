"""Starting an agent harness in its sandbox, and judging an agent that never got going.

``prepare_agent`` opens the rollout's egress gateway to the providers the harness needs,
with the organisation's stored keys and base URLs (recording each call in ``exchanges``
when given), and assembles what the sandbox needs:
the agent's tool tree (read-only), the gateway's socket and forwarder, and a PATH.

``agent_failure`` turns an agent that exited without doing anything into an
``agent_failed`` error whose message says what happened and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli.server.agents import AgentContext, Harness
from envpools_cli.server.agents.installs import AgentTools
from envpools_cli.server.sandbox.drivers import Mount, RunResult
from envpools_cli.server.sandbox.egress import EgressGateway, Route, open_gateway, provider
from envpools_cli.server.sandbox.exchanges import ExchangeLog
from envpools_cli.server.sandbox.provider_watch import DEFAULT_PROVIDER_TIMEOUT_SEC

__all__ = ["AgentLaunch", "agent_failure", "prepare_agent"]

_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_TAIL_SHOWN = 6


@dataclass
class AgentLaunch:
    command: list[str]
    env: dict[str, str]
    stdin: bytes | None
    network: bool
    bind_solution: bool
    mounts: list[Mount] = field(default_factory=list)
    gateway: EgressGateway | None = None
    egress_socket: Path | None = None
    """The gateway's socket, for a driver that connects the sandbox to it itself."""
    secrets: list[str] = field(default_factory=list)
    """Values to redact from everything the rollout records."""

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.close()


def _routes(harness: Harness, context: AgentContext) -> list[Route]:
    routes = []
    for name in harness.providers(context):
        wanted = provider(name)
        key = context.secret(*wanted.key_names)
        upstream = wanted.upstream(context.secret(wanted.base_url_name))
        if key and upstream:
            key_name = context.which(*wanted.key_names) or wanted.key_names[0]
            routes.append(Route(name, upstream, key, key_name=key_name))
    return routes


def prepare_agent(
    harness: Harness,
    context: AgentContext,
    tools: AgentTools,
    *,
    isolated: bool,
    host_path: str,
    forwarder_inside: bool = True,
    exchanges: Path | None = None,
    provider_timeout: float = DEFAULT_PROVIDER_TIMEOUT_SEC,
) -> AgentLaunch:
    """The command, environment and mounts of the agent phase (close it when done)."""
    routes = _routes(harness, context)
    record = None
    if exchanges is not None:
        record = ExchangeLog(exchanges, [value for _, value in context.credentials.values()])
    gateway = None
    if routes:
        gateway = open_gateway(
            routes, isolated=isolated, exchanges=record, provider_timeout=provider_timeout
        )
    try:
        if gateway is not None:
            if record is not None:
                record.add_secrets(gateway.placeholder)
            context.gateway_urls = {r.name: gateway.url_for(r.name) for r in routes}
            context.placeholder = gateway.placeholder
        invocation = harness.invocation(context)
        tree = tools.tree(harness.name)
        env = dict(invocation.env)
        if harness.binary is not None:
            base = _SANDBOX_PATH if isolated else host_path
            env["PATH"] = ":".join([*tree.path, base])
        mounts = list(tree.mounts)
        command = list(invocation.command)
        secrets = [invocation.env[k] for k in invocation.secret_env if invocation.env.get(k)]
        egress_socket = None
        if gateway is not None:
            if forwarder_inside:
                mounts += gateway.sandbox_mounts()
                command = gateway.launcher() + command
            else:
                egress_socket = gateway.socket_path
            secrets += [gateway.placeholder, *(r.key for r in routes)]
    except BaseException:
        if gateway is not None:
            gateway.close()
        raise
    return AgentLaunch(
        command=command,
        env=env,
        stdin=invocation.stdin,
        network=invocation.network,
        bind_solution=invocation.bind_solution,
        mounts=mounts,
        gateway=gateway,
        egress_socket=egress_socket,
        secrets=[s for s in secrets if len(s) >= 6],
    )


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _hint(harness: Harness, launch: AgentLaunch, exit_code: int | None) -> str:
    gateway = launch.gateway
    log = gateway.log if gateway is not None else None
    routes = sorted(gateway.routes) if gateway is not None else []
    if log is not None and log.failures:
        names = sorted({provider(r).base_url_name for r in routes})
        return (
            f"the provider endpoint could not be reached ({log.failures[-1]}): check the "
            f"{' / '.join(names) or 'base URL'} credential (envpools credentials list) "
            "and this machine's network"
        )
    if log is not None and any(code in log.statuses for code in (401, 403)):
        keys = sorted({provider(r).key_names[0] for r in routes})
        return (
            f"the provider refused the stored key: replace the {' / '.join(keys)} "
            f"credential (envpools credentials rotate {keys[0] if keys else 'NAME'})"
        )
    if log is not None and log.statuses.get(404):
        return (
            "the provider answered 404: check the model id and the base URL credential "
            "(an OpenAI-style base URL ends in /v1, an Anthropic one does not)"
        )
    if own := harness.diagnose():
        return own
    if exit_code in (126, 127):
        if harness.custom:
            return (
                f"the {harness.binary} command could not start in the sandbox: check the "
                "manifest's run.command and add it again (envpools agents add PATH --force)"
            )
        return (
            f"the {harness.binary} command could not start in the sandbox: install it "
            f"with `envpools agents install {harness.name}` (or --force to reinstall)"
        )
    return (
        f"see agent/{harness.log_name} (envpools rollouts download <id>) for its whole "
        "output; `envpools capabilities get` shows whether the agent runs here"
    )


def agent_failure(
    harness: Harness, result: RunResult, launch: AgentLaunch
) -> dict[str, Any] | None:
    """An ``agent_failed`` error when the agent exited without doing anything, else None."""
    if harness.binary is None or harness.progress:
        return None
    if result.exit_code == 0 and not harness.errors:
        return None
    tail = list(harness.tail)[-_TAIL_SHOWN:]
    what = f"{harness.binary} exited with code {result.exit_code} before doing any work"
    said = harness.errors[-1] if harness.errors else next((t for t in reversed(tail) if t), "")
    if said:
        what += f": {_one_line(said, 300)}"
    # One line, what to do included: the CLI's own last lines are in ``stderr_tail`` (and
    # its whole output in the events and agent/<cli>.txt), where `rollouts get` shows them.
    hint = _hint(harness, launch, result.exit_code)
    error: dict[str, Any] = {
        "code": "agent_failed",
        "message": f"{what}; what to do: {hint}",
        "hint": hint,
        "exit_code": result.exit_code,
        "stderr_tail": [line[:300] for line in tail],
    }
    if launch.gateway is not None:
        error["gateway"] = launch.gateway.log.summary()
    return error
