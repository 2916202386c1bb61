"""What a rollout's error code says about who is to blame: the one table every view reads.

A rollout that did not run to a verdict is an *error*, counted apart from the agent's
*failures*: jobs leave errors out of pass rates and pass@k, show them in their own
column (by kind), in JUnit as ``<error>`` and in the HTML report. The kinds:

- ``verifier``: the task's tests ran but gave no reward (Harbor's ``RewardFileNotFoundError``);
- ``provider``: the agent's LLM provider failed it (unreachable, refused the key, rate
  limits, 5xx, no answer in time), as the egress gateway saw;
- ``infrastructure``: the backend or the machine could not run it (a restart, a lost
  node, an image or engine missing, a bug);
- ``setup``: the request cannot run here as configured (a credential, harness or task
  backend missing, a task that does not parse);
- ``agent``: the agent CLI could not work at all (it did not start).

``transient`` codes are worth running again unchanged (``jobs resume --retry-errors``);
a job with such errors left exits 7. Codes a backend reports with status ``failed`` but
that are errors all the same (a verifier without a reward, a provider failure) count as
errors too. Unknown codes of rollouts in ``error`` count as infrastructure.

Stdlib only: the fast paths and the client may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CODES",
    "ERROR_KINDS",
    "ErrorCode",
    "error_kind",
    "is_transient",
    "lookup",
]

#: The kinds, in the order views list them.
ERROR_KINDS = ("verifier", "provider", "infrastructure", "setup", "agent")


@dataclass(frozen=True)
class ErrorCode:
    code: str
    kind: str
    """One of ERROR_KINDS, or ``failure`` for codes that explain an ordinary failure."""
    transient: bool = False
    what: str = ""

    @property
    def is_error(self) -> bool:
        return self.kind != "failure"


def _codes(*entries: ErrorCode) -> dict[str, ErrorCode]:
    return {entry.code: entry for entry in entries}


CODES: dict[str, ErrorCode] = _codes(
    # The verifier ran but gave no verdict.
    ErrorCode("reward_missing", "verifier", what="the verifier wrote no reward"),
    ErrorCode("reward_invalid", "verifier", what="the verifier's reward file is unreadable"),
    ErrorCode("verifier_error", "verifier", what="the verifier could not score the rollout"),
    # The LLM provider (as the egress gateway saw it).
    ErrorCode("provider_unreachable", "provider", what="the provider could not be reached"),
    ErrorCode("provider_auth", "provider", what="the provider refused the key"),
    ErrorCode(
        "provider_rate_limited", "provider", transient=True, what="the provider rate-limited"
    ),
    ErrorCode("provider_error", "provider", transient=True, what="the provider failed (5xx)"),
    ErrorCode(
        "provider_timeout", "provider", transient=True, what="the provider did not answer in time"
    ),
    # The backend or the machine.
    ErrorCode("backend_restarted", "infrastructure", transient=True, what="the backend restarted"),
    ErrorCode("node_lost", "infrastructure", transient=True, what="the node running it was lost"),
    ErrorCode(
        "timeout_under_load",
        "infrastructure",
        transient=True,
        what="timed out while the machine was saturated",
    ),
    ErrorCode("internal", "infrastructure", what="a bug in the backend"),
    ErrorCode("image_unavailable", "infrastructure", what="the task's image could not be had"),
    ErrorCode("container_unavailable", "infrastructure", what="no container engine works"),
    ErrorCode("environment_unavailable", "infrastructure", what="the sandbox could not start"),
    ErrorCode("environment_build_failed", "infrastructure", what="the task's image did not build"),
    ErrorCode(
        "environment_build_timeout", "infrastructure", what="the task's image build timed out"
    ),
    ErrorCode("credential_key_unavailable", "infrastructure", what="credentials cannot be read"),
    # The request as configured cannot run here.
    ErrorCode("bad_task_source", "setup", what="the task does not parse"),
    ErrorCode("backend_unsupported", "setup", what="this backend cannot run such tasks"),
    ErrorCode("environment_unsupported", "setup", what="the sandbox cannot provide the task"),
    ErrorCode("environment_missing", "setup", what="the task has no environment"),
    ErrorCode("harness_unavailable", "setup", what="the agent is not available here"),
    ErrorCode("agent_unavailable", "setup", what="the agent is not installed"),
    ErrorCode("credentials_missing", "setup", what="a credential the agent needs is missing"),
    ErrorCode("credentials_unreadable", "setup", what="a credential cannot be read"),
    ErrorCode("spend_limit", "setup", what="the pool's spend limit was reached"),
    # The agent CLI could not work at all.
    ErrorCode("agent_failed", "agent", what="the agent CLI could not work"),
    # Ordinary failures: the agent (or its tests) ran and lost.
    ErrorCode("agent_timeout", "failure", what="the agent ran out of time"),
    ErrorCode("verifier_timeout", "failure", what="the tests ran out of time"),
    ErrorCode("storage_limit", "failure", what="the sandbox wrote too much"),
    ErrorCode("memory_limit", "failure", what="the sandbox went over its memory limit"),
)

_UNKNOWN_ERROR = ErrorCode("", "infrastructure")


def lookup(code: object) -> ErrorCode | None:
    return CODES.get(code) if isinstance(code, str) else None


def _code_of(error: object) -> object:
    return error.get("code") if isinstance(error, dict) else None


def error_kind(status: object, error: object) -> str | None:
    """The kind of error a rollout ended in (``status`` and its ``error`` document), or
    None when it is no error: it passed, failed, was cancelled or is still going."""
    text = str(status or "").strip().lower()
    if text == "cancelled":
        return None
    entry = lookup(_code_of(error))
    if text == "error":
        return (entry if entry is not None and entry.is_error else _UNKNOWN_ERROR).kind
    if text == "failed" and entry is not None and entry.is_error:
        return entry.kind
    return None


def is_transient(status: object, error: object) -> bool:
    """Whether running it again unchanged may well succeed (a restart, a 429, a 5xx)."""
    if error_kind(status, error) is None:
        return False
    entry = lookup(_code_of(error))
    return entry is not None and entry.transient
