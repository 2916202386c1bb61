"""Errors the CLI raises itself, and the one exit-code table for everything.

0   ok
1   error (anything not listed below)
2   usage: bad flag, argument, file or input; checked before any request
3   wait/tail timed out while the rollout was still going
4   authentication missing or rejected, or the plan does not include the feature
5   the rollout ended without success (or below --min-reward)
6   not found
7   transient failure after retries (network, 5xx, 429): safe to retry
130 interrupted
"""

from __future__ import annotations

__all__ = [
    "EXIT_AUTH",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_NOT_SUCCEEDED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_TRANSIENT",
    "EXIT_USAGE",
    "CLIError",
    "NotSucceeded",
    "UsageProblem",
    "WaitTimedOut",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_AUTH = 4
EXIT_NOT_SUCCEEDED = 5
EXIT_NOT_FOUND = 6
EXIT_TRANSIENT = 7
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_ERROR: "error",
    EXIT_USAGE: "usage error (bad flag, argument or input)",
    EXIT_TIMEOUT: "wait/tail timed out, the rollout is still going",
    EXIT_AUTH: "authentication missing or rejected, or plan does not allow it",
    EXIT_NOT_SUCCEEDED: "rollout ended without success (or below --min-reward)",
    EXIT_NOT_FOUND: "not found",
    EXIT_TRANSIENT: "transient failure after retries; safe to retry",
    EXIT_INTERRUPTED: "interrupted",
}


class CLIError(Exception):
    """An expected failure with its exit code, machine code and an optional hint."""

    exit_code = EXIT_ERROR
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        exit_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
        if code is not None:
            self.code = code


class UsageProblem(CLIError):
    exit_code = EXIT_USAGE
    code = "usage_error"


class WaitTimedOut(CLIError):
    exit_code = EXIT_TIMEOUT
    code = "timeout"


class NotSucceeded(CLIError):
    exit_code = EXIT_NOT_SUCCEEDED
    code = "not_succeeded"
