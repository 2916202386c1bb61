"""The settings one CLI invocation runs with: global flags, profile, key, connection."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envpools_cli.cli_errors import EXIT_AUTH, CLIError, UsageProblem
from envpools_cli.config import BadSetting, ConfigError, Resolved, resolve

if TYPE_CHECKING:
    from envpools_cli.client import HTTPSession
    from envpools_cli.keystore import StoredKey

__all__ = ["Runtime", "runtime"]


@dataclass
class Runtime:
    profile_flag: str | None = None
    api_url_flag: str | None = None
    debug: bool = False
    no_input: bool = False
    json_errors: bool = False
    _resolved: Resolved | None = None
    _key: StoredKey | None = None
    _session: HTTPSession | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> None:
        """Back to a fresh invocation (the CLI can run several in one process, as in tests)."""
        fresh = Runtime()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def use_profile(self, name: str) -> None:
        """Switch to profile ``name`` (its own URL and key) for the rest of this invocation."""
        self.profile_flag = name
        self.api_url_flag = None
        self._resolved = None
        self._key = None

    def resolved(self) -> Resolved:
        if self._resolved is None:
            try:
                self._resolved = resolve(self.profile_flag, self.api_url_flag)
            except BadSetting as exc:
                raise UsageProblem(str(exc)) from None
            except ConfigError as exc:
                raise CLIError(str(exc), hint="fix or delete the file shown") from None
        return self._resolved

    @property
    def interactive(self) -> bool:
        """Prompts are allowed: terminals on both ends, not CI, not --no-input."""
        if self.no_input or os.environ.get("ENVPOOLS_NO_INPUT") or os.environ.get("CI"):
            return False
        try:
            return sys.stdin.isatty() and sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    def api_key(self) -> StoredKey:
        if self._key is None:
            from envpools_cli import keystore
            from envpools_cli.output.messages import warn

            profile = self.resolved().profile
            try:
                self._key = keystore.get_key(profile, warn=lambda m: warn(m, once=True))
            except keystore.KeyNotFound:
                raise CLIError(
                    f"no API key for profile {profile!r}",
                    hint="run 'envpools auth login', or set ENVPOOLS_API_KEY "
                    "(or 'envpools local up' for a local backend)",
                    exit_code=EXIT_AUTH,
                    code="auth_missing",
                ) from None
            problem = keystore.key_problem(self._key.value)
            if problem:
                source, self._key = self._key.source, None
                raise UsageProblem(f"the API key from {source} {problem}")
        return self._key

    def session(self) -> HTTPSession:
        if self._session is None:
            from envpools_cli.client import HTTPSession

            self._session = HTTPSession()
        return self._session

    def conn(self, *, versioned: bool = True) -> dict[str, Any]:
        """Keyword arguments for the client functions (``versioned=False``: fixed paths)."""
        resolved = self.resolved()
        from envpools_cli.client import ConfigurationError, normalize_backend_base

        try:
            base = normalize_backend_base(resolved.api_url)
        except ConfigurationError as exc:
            raise UsageProblem(f"{exc} (from {resolved.api_url_source})") from None
        conn = {"backend_base": base, "api_key": self.api_key().value, "session": self.session()}
        if versioned:
            conn["api_version"] = resolved.api_version
        return conn

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


runtime = Runtime()
